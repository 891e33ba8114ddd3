"""Network-namespace testbed for Mobile IPv6 (`mip6 ha`, `mip6 mn`).

`Testbed` (testbed.topology) builds the topology; testbed.harness drives the
daemons and the traffic; testbed.stream is the UDP stream used to measure
handovers; `testbed.scapy_mn` is a scapy mobile node that runs inside the MN
namespace. Manual use:

    /usr/bin/python3 -m testbed up [--tag m6]
    /usr/bin/python3 -m testbed down [--tag m6]
"""

from .topology import REPO_ROOT, Testbed, TestbedError

__all__ = ["REPO_ROOT", "Testbed", "TestbedError"]
