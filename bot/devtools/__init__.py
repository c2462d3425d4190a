"""Developer tools: the demo, the example organisation and the local Bot API emulator."""
