import Mip6CLI

Mip6Command.main()
