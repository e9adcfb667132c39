"""Deploy tooling: publishing the site after `sam deploy`. Runs on the deployer's machine, never on AWS."""
