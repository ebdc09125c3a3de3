"""Host-side tools: the `vistelse` command and what it drives."""
