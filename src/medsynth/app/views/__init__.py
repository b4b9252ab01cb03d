"""One module per app page, each with `render(results: Path)`: widgets only; logic is in medsynth.app.*."""
