"""The simulator's AMI server (Asterisk Manager Interface over TCP)."""
