import Mip6CLI

await Mip6Command.runAsync()
