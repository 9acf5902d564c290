"""The ArtifactStore port's contract on the local folder and the GCS emulator."""
