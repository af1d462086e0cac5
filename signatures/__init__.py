"""Part 11 identity: passwords, log-in lock-out and electronic signatures (21 CFR 11.50, 11.70, 11.200, 11.300)."""
