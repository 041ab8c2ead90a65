//! Powering a guest off with a grace period for its shutdown, waiting
//! inline: for `delete`, which runs to the end in one call (an apply's
//! deletions come back rather than wait; see `apply`).

use std::time::Duration;

use vkube_vsphere::{Fault, VmId, VspherePort};

use crate::context::Clock;
use crate::error::Result;

/// The first pause between looks at a shutting-down guest; it doubles up
/// to [`SHUTDOWN_POLL_MAX`] (guests take seconds, the simulator none).
const SHUTDOWN_POLL_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between looks at a shutting-down guest.
const SHUTDOWN_POLL_MAX: Duration = Duration::from_secs(1);

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
    power_off_from(vsphere, clock, vm, &state.power_state, grace).await
}

/// [`power_off`] of a VM whose power state was just observed
/// (`power_state`), without reading it again first.
pub async fn power_off_from(
    vsphere: &dyn VspherePort,
    clock: &dyn Clock,
    vm: &VmId,
    power_state: &str,
    grace: Duration,
) -> Result<()> {
    if power_state != "poweredOn" {
        return Ok(());
    }
    if !grace.is_zero() && vsphere.shutdown_guest(vm).await.is_ok() {
        // Looked at at once (many guests are off by the time vCenter
        // answers), then at growing pauses until the grace is over.
        let deadline = clock.now() + grace;
        let mut pause = SHUTDOWN_POLL_FIRST;
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
            clock.sleep(pause.min(left)).await;
            pause = (pause * 2).min(SHUTDOWN_POLL_MAX);
        }
    }
    Ok(vsphere.power_off(vm).await?)
}

/// Power off (from the observed `power_state`) and destroy a VM, one chain
/// per node. A VM found on after all (the observation was stale) is
/// powered off at once and destroyed.
pub async fn remove_vm(
    vsphere: &dyn VspherePort,
    clock: &dyn Clock,
    vm: &VmId,
    power_state: &str,
    grace: Duration,
) -> Result<()> {
    power_off_from(vsphere, clock, vm, power_state, grace).await?;
    match vsphere.destroy_vm(vm).await {
        Err(e) if e.is(&Fault::InvalidPowerState) => {
            power_off(vsphere, clock, vm, Duration::ZERO).await?;
            Ok(vsphere.destroy_vm(vm).await?)
        }
        other => Ok(other?),
    }
}
