"""Sans-IO codecs: bytes in, attrs messages out. No I/O, no clock."""
