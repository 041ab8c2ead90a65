#!/usr/bin/env python3
"""The peer baseline for bench/cluster.sh, written with pyVmomi.

`clone`: what a user (or Ansible's vmware modules) would script: for each
node, CloneVM_Task, wait, ReconfigVM_Task (the simulator ignores the config
in a clone spec), wait, PowerOnVM_Task, wait — sequentially, or with
`--threads N` the same chain per node on N threads (the strongest peer a
platform engineer writes in an afternoon). Prints one JSON object: nodes, wall seconds, SOAP round trips (every
HTTP request pyVmomi makes after login, task waits included). The VMs are
then powered off and destroyed (not timed, not counted), unless `--keep`.

`delete --folder NAME`: the peer of `vkube cluster delete`: for each VM in
the folder, PowerOffVM_Task, wait, Destroy_Task, wait (on `--threads N`),
then the folder's Destroy_Task. Prints the same JSON object (login
included in the wall time, round trips after login).

Two helpers for the bench, outside the timed loop:
`ops PREFIX`: per VM whose name starts with PREFIX, the times (epoch
seconds) of its clone / reconfigure / power-on completions from the vCenter
event log.
`vms`: the number of VMs in the inventory and their names.

Connection: VC_URL, VC_USERNAME, VC_PASSWORD (certificate not verified).
"""

import argparse
import concurrent.futures
import json
import threading
import os
import ssl
import sys
import time
from urllib.parse import urlparse

from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import SoapAdapter, vim

ROUND_TRIPS = 0
_COUNT_LOCK = threading.Lock()
_invoke = SoapAdapter.SoapStubAdapter.InvokeMethod


def _counting_invoke(self, *args, **kwargs):
    # Every SOAP call, property reads and WaitForUpdates polls included,
    # is one HTTP POST through this method.
    global ROUND_TRIPS
    with _COUNT_LOCK:
        ROUND_TRIPS += 1
    return _invoke(self, *args, **kwargs)


SoapAdapter.SoapStubAdapter.InvokeMethod = _counting_invoke


def connect():
    url = urlparse(os.environ["VC_URL"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return SmartConnect(
        host=url.hostname,
        port=url.port or 443,
        user=os.environ["VC_USERNAME"],
        pwd=os.environ["VC_PASSWORD"],
        sslContext=context,
    )


def find(si, path):
    obj = si.content.searchIndex.FindByInventoryPath(path)
    if obj is None:
        sys.exit(f"not found: {path}")
    return obj


def all_vms(si):
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        return [vm.name for vm in view.view]
    finally:
        view.Destroy()


def clone(args):
    global ROUND_TRIPS
    start = time.monotonic()  # like the vkube timing: login included
    si = connect()
    ROUND_TRIPS = 0  # like `vkube --stats`: calls after login
    domains = []
    for spec in args.domain:
        pool, datastore = spec.split(",")
        domains.append((find(si, pool), find(si, datastore)))
    template = find(si, args.template)
    parent = find(si, args.parent_folder)
    folder = parent.CreateFolder(args.folder)
    def node(i):
        name = f"{args.folder}-{i}"
        pool, datastore = domains[i % len(domains)]
        config = vim.vm.ConfigSpec(
            numCPUs=args.cpu,
            memoryMB=args.memory_mib,
            extraConfig=[
                vim.option.OptionValue(key="guestinfo.metadata", value=f"local-hostname: {name}"),
                vim.option.OptionValue(key="guestinfo.metadata.encoding", value="yaml"),
            ],
        )
        spec = vim.vm.CloneSpec(
            location=vim.vm.RelocateSpec(pool=pool, datastore=datastore),
            config=config,
            powerOn=False,
            template=False,
        )
        task = template.CloneVM_Task(folder=folder, name=name, spec=spec)
        WaitForTask(task)
        vm = task.info.result
        WaitForTask(vm.ReconfigVM_Task(spec=config))
        WaitForTask(vm.PowerOnVM_Task())
        return vm

    if args.threads > 1:
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.threads) as pool:
            vms = list(pool.map(node, range(args.nodes)))
    else:
        vms = [node(i) for i in range(args.nodes)]
    wall = time.monotonic() - start
    trips = ROUND_TRIPS
    if not args.keep:
        for vm in vms:
            remove(vm)
        WaitForTask(folder.Destroy_Task())
    Disconnect(si)
    print(json.dumps({"tool": "pyVmomi", "threads": args.threads, "nodes": args.nodes,
                      "wall_s": round(wall, 3), "round_trips": trips}))


def remove(vm):
    WaitForTask(vm.PowerOffVM_Task())
    WaitForTask(vm.Destroy_Task())


def delete(args):
    global ROUND_TRIPS
    start = time.monotonic()
    si = connect()
    ROUND_TRIPS = 0
    folder = find(si, f"{args.parent_folder}/{args.folder}")
    vms = [child for child in folder.childEntity if isinstance(child, vim.VirtualMachine)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(args.threads, 1)) as pool:
        list(pool.map(remove, vms))
    WaitForTask(folder.Destroy_Task())
    wall = time.monotonic() - start
    trips = ROUND_TRIPS
    Disconnect(si)
    print(json.dumps({"tool": "pyVmomi", "threads": args.threads, "nodes": len(vms),
                      "wall_s": round(wall, 3), "round_trips": trips}))


def ops(args):
    si = connect()
    kinds = {
        vim.event.VmClonedEvent: "clone",  # (VmBeingClonedEvent names the source VM)
        vim.event.VmReconfiguredEvent: "reconfigure",
        vim.event.VmPoweredOnEvent: "powerOn",
    }
    events = si.content.eventManager.QueryEvents(vim.event.EventFilterSpec(maxCount=1000))
    per_vm = {}
    for event in events:
        kind = kinds.get(type(event))
        name = event.vm.name if event.vm else ""
        if kind and name.startswith(args.prefix):
            times = per_vm.setdefault(name, {"clone": [], "reconfigure": [], "powerOn": []})
            times[kind].append(event.createdTime.timestamp())
    Disconnect(si)
    for times in per_vm.values():
        for t in times.values():
            t.sort()
    print(json.dumps(per_vm, sort_keys=True))


def vms(_args):
    si = connect()
    names = sorted(all_vms(si))
    Disconnect(si)
    print(json.dumps({"count": len(names), "names": names}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("clone", help="the timed sequential clone loop")
    c.add_argument("--nodes", type=int, default=23)
    c.add_argument("--template", default="/DC0/vm/DC0_C0_RP0_VM0")
    c.add_argument("--parent-folder", default="/DC0/vm")
    c.add_argument("--folder", default="pyvmomi-bench")
    c.add_argument("--domain", action="append", metavar="POOL,DATASTORE",
                   help="inventory paths; nodes go round-robin over the domains (repeatable)")
    c.add_argument("--cpu", type=int, default=4)
    c.add_argument("--memory-mib", type=int, default=8192)
    c.add_argument("--threads", type=int, default=1, help="node chains in flight at once")
    c.add_argument("--keep", action="store_true", help="leave the VMs (for a timed `delete`)")
    c.set_defaults(run=clone)
    d = sub.add_parser("delete", help="the timed power-off and destroy of a folder's VMs")
    d.add_argument("--parent-folder", default="/DC0/vm")
    d.add_argument("--folder", default="pyvmomi-bench")
    d.add_argument("--threads", type=int, default=1, help="VM removals in flight at once")
    d.set_defaults(run=delete)
    o = sub.add_parser("ops", help="clone/reconfigure/power-on times per VM from the event log")
    o.add_argument("prefix")
    o.set_defaults(run=ops)
    v = sub.add_parser("vms", help="VMs in the inventory")
    v.set_defaults(run=vms)
    args = parser.parse_args()
    if args.command == "clone" and not args.domain:
        args.domain = ["/DC0/host/DC0_C0/Resources,/DC0/datastore/LocalDS_0"]
    args.run(args)


if __name__ == "__main__":
    main()
