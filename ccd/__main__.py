from ccd.cli.main import main

main()
