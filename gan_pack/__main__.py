from gan_pack.cli.app import main

main()
