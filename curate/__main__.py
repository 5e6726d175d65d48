from curate.cli.main import main

main()
