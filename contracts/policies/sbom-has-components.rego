# Referenced by build-and-release.toml; evaluated by the policy engine to come.
package tally.sbom

import rego.v1

default violations := []

violations contains msg if {
	count(input.components) < data.min_components
	msg := sprintf("the SBOM lists %d components; at least %d are required", [count(input.components), data.min_components])
}
