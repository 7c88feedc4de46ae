"""Every mode's pipeline, composed once (build) and driven by one loop (drive): above
the stages, the diagnosis, the sources and the recordings they compose."""
