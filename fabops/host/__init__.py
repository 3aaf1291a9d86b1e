"""Host-side code: what runs on the host itself, under cron or detached by a
deploy. Standard library, invoke and yaml only; must run on Python 3.9 and
never import paramiko, fabric, cryptography or rich (docs/architecture.md, "Layers")."""
