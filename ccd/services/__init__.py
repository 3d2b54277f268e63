"""Commands that act on Asterisk (AMI actions) for the CLI, panel and jobs."""
