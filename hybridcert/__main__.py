from hybridcert.cli import main

main()
