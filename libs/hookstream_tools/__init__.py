"""Developer tooling: the CLI, the local stack launcher and the demo. Services never import it."""
