# A plain Rego policy (no YAML): it applies to the materials a contract names
# in `materials`. Arguments arrive as strings in input.args (Chainloop's
# convention), so numbers are converted here.
package tally.sbom

import rego.v1

min_components := to_number(object.get(input.args, "min_components", "1"))

violations contains msg if {
	count(object.get(input, "components", [])) < min_components
	msg := sprintf("the SBOM lists %d components; at least %d are required", [count(object.get(input, "components", [])), min_components])
}
