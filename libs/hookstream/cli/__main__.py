from hookstream.cli.main import main

main()
