"""Building blocks shared by the zoo: similarity functions, masked pooling, sequence encoders."""
