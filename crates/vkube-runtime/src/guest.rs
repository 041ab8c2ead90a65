//! Powering a guest off with a grace period for its shutdown, waiting
//! inline: for `delete`, which runs to the end in one call (an apply's
//! deletions come back rather than wait; see `apply`).

use std::time::Duration;

use vkube_vsphere::{VmId, VspherePort};

use crate::context::Clock;
use crate::error::Result;

/// How often a shutting-down guest is checked.
const SHUTDOWN_POLL: Duration = Duration::from_millis(500);

/// Power a VM off: a guest shutdown first, a hard power-off once `grace`
/// has passed (at once with a zero grace). Already off, or gone, is success.
pub async fn power_off(
    vsphere: &dyn VspherePort,
    clock: &dyn Clock,
    vm: &VmId,
    grace: Duration,
) -> Result<()> {
    let Some(state) = vsphere.vm(vm).await? else {
        return Ok(());
    };
    if state.power_state != "poweredOn" {
        return Ok(());
    }
    if !grace.is_zero() && vsphere.shutdown_guest(vm).await.is_ok() {
        // Looked at at once (many guests are off by the time vCenter
        // answers), then every SHUTDOWN_POLL until the grace is over.
        let deadline = clock.now() + grace;
        loop {
            match vsphere.vm(vm).await? {
                None => return Ok(()),
                Some(s) if s.power_state != "poweredOn" => return Ok(()),
                Some(_) => {}
            }
            let left = deadline
                .duration_since(clock.now())
                .unwrap_or(Duration::ZERO);
            if left.is_zero() {
                break;
            }
            clock.sleep(SHUTDOWN_POLL.min(left)).await;
        }
    }
    Ok(vsphere.power_off(vm).await?)
}
