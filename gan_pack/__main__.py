from gan_pack.cli import main

main()
