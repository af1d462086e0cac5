"""Diagram scenario tests: one YAML file per path through each diagram (URS-VAL-02)."""
