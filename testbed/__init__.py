"""Network-namespace testbed for the Mobile IPv6 home agent.

`Testbed` (testbed.topology) builds the topology; `testbed.scapy_mn` is a
scapy mobile node that runs inside the MN namespace. Manual use:

    /usr/bin/python3 -m testbed up [--tag m6]
    /usr/bin/python3 -m testbed down [--tag m6]
"""

from .topology import REPO_ROOT, Testbed, TestbedError

__all__ = ["REPO_ROOT", "Testbed", "TestbedError"]
