"""The local cloud stack: emulators, the event bridge and periodic exports."""
