"""SynthVTR: a seeded generator of compositional video-caption data in HGR's format."""
