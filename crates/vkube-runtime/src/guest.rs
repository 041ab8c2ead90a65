//! Waiting on guests: a shutdown that may take a grace period before the
//! hard power-off, and a DHCP address that may take a while to appear. The
//! vSphere port offers the single calls; the waiting (and its pace) is the
//! runtime's.

use std::time::Duration;

use vkube_vsphere::{VmId, VspherePort};

use crate::context::Clock;
use crate::error::Result;

/// How often a shutting-down guest is checked.
const SHUTDOWN_POLL: Duration = Duration::from_millis(500);
/// First and longest pause between address checks.
const ADDRESS_POLL: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(5));

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
        let deadline = clock.now() + grace;
        while clock.now() < deadline {
            clock.sleep(SHUTDOWN_POLL.min(grace)).await;
            match vsphere.vm(vm).await? {
                None => return Ok(()),
                Some(s) if s.power_state != "poweredOn" => return Ok(()),
                Some(_) => {}
            }
        }
    }
    Ok(vsphere.power_off(vm).await?)
}

/// The address the guest reports, waiting up to `timeout` at a calm pace
/// (0.5 s growing to 5 s); `None` when none appeared in time.
pub async fn wait_for_ip(
    vsphere: &dyn VspherePort,
    clock: &dyn Clock,
    vm: &VmId,
    timeout: Duration,
) -> Result<Option<String>> {
    let deadline = clock.now() + timeout;
    let mut pause = ADDRESS_POLL.0;
    loop {
        if let Some(ip) = vsphere.guest_ip(vm).await? {
            return Ok(Some(ip));
        }
        let left = deadline
            .duration_since(clock.now())
            .unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return Ok(None);
        }
        clock.sleep(pause.min(left)).await;
        pause = (pause * 2).min(ADDRESS_POLL.1);
    }
}
