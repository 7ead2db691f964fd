from hookstream.launcher import main

main()
