import Mip6Bench

// `mip6-bench xdp | signaling | gen | hold | bu-load`: what perf/run and the perf/*.py scripts drive.
await BenchCommand.runAsync()
