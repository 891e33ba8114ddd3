import Mip6CLI

// Async main: `mip6 ha` runs a ServiceLifecycle ServiceGroup, and both daemons take their
// signals through ServiceLifecycle's signal sequence (the runtime's main thread receives them).
await Mip6Command.runAsync()
