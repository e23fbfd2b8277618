//! `tally integration …`: what the control plane's integrations were told
//! (SPEC.md §17.3), through the admin API.

use crate::cli::{ConnArgs, IntegrationRetryArgs, IntegrationStatusArgs};
use crate::cmd::admin::{client, echo, ts};
use crate::cmd::Report;
use crate::exit::Failure;
use crate::wire;

/// `tally integration list`
pub fn list(a: &ConnArgs) -> Result<Report, Failure> {
    let list: wire::IntegrationList = client(&a.conn)?.get_as("/api/v1/integrations")?;
    let mut t = format!(
        "{:<20} {:<17} {:<34} {:>8} {:>10} {:>7}\n",
        "NAME", "KIND", "ENDPOINT", "PENDING", "DELIVERED", "FAILED"
    );
    for i in &list.integrations {
        t.push_str(&format!(
            "{:<20} {:<17} {:<34} {:>8} {:>10} {:>7}\n",
            i.name, i.kind, i.endpoint, i.pending, i.delivered, i.failed
        ));
    }
    if list.integrations.is_empty() {
        t = "no integration is configured ([[integrations]] in the server's configuration)\n".into();
    }
    Ok(Report {
        text: t,
        json: echo(&list),
    })
}

/// `tally integration status`
pub fn status(a: &IntegrationStatusArgs) -> Result<Report, Failure> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("limit", &a.limit.to_string());
    if let Some(i) = &a.integration {
        q.append_pair("integration", i);
    }
    if let Some(s) = &a.state {
        q.append_pair("state", s);
    }
    let list: wire::DeliveryList =
        client(&a.conn)?.get_as(&format!("/api/v1/integrations/deliveries?{}", q.finish()))?;
    let mut t = format!(
        "{:>6} {:<18} {:<32} {:<10} {:>8}  {:<22} LAST ERROR\n",
        "ID", "INTEGRATION", "EVENT", "STATE", "ATTEMPTS", "DELIVERED / NEXT"
    );
    for d in &list.deliveries {
        let when = match d.state.as_str() {
            "delivered" => ts(d.delivered_at),
            "pending" => ts(Some(d.next_at)),
            _ => "-".into(),
        };
        t.push_str(&format!(
            "{:>6} {:<18} {:<32} {:<10} {:>8}  {:<22} {}\n",
            d.id,
            d.integration,
            d.event_id,
            d.state,
            d.attempts,
            when,
            d.last_error.as_deref().unwrap_or("-"),
        ));
    }
    Ok(Report {
        text: t,
        json: echo(&list),
    })
}

/// `tally integration retry`
pub fn retry(a: &IntegrationRetryArgs) -> Result<Report, Failure> {
    let req = wire::RetryDeliveries {
        id: a.id,
        integration: a.integration.clone(),
    };
    let (_, r): (_, wire::DeliveriesRetried) =
        client(&a.conn)?.post_as("/api/v1/integrations/deliveries/retry", &req)?;
    Ok(Report {
        text: format!(
            "{} failed deliver{} pending again\n",
            r.retried,
            if r.retried == 1 { "y is" } else { "ies are" }
        ),
        json: echo(&r),
    })
}
