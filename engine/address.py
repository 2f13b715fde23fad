"""Logical addresses of the hybrid log.

An address is 48 bits: the page number in the high bits and the offset inside the page in the
low ``page_bits`` bits. Address 0 means "no record"; the log starts at ``FIRST_ADDRESS`` so that
every real record has a non-zero address (as in FASTER, where the first 64 bytes are reserved).
"""

ADDRESS_BITS = 48
ADDRESS_MASK = (1 << ADDRESS_BITS) - 1
INVALID_ADDRESS = 0
FIRST_ADDRESS = 64
# FASTER marks hash entries that point into the read cache with the top address bit, so log
# addresses proper use 47 bits.
READ_CACHE_BIT = 1 << 47
MAX_ADDRESS = READ_CACHE_BIT - 1

MIN_PAGE_BITS = 12  # 4 KiB
MAX_PAGE_BITS = 30  # 1 GiB


def page_bits_for(page_size: int) -> int:
    """Exponent of a power-of-two page size, validating its range."""
    bits = page_size.bit_length() - 1
    if page_size <= 0 or 1 << bits != page_size:
        raise ValueError(f"page_size must be a power of two, got {page_size}")
    if not MIN_PAGE_BITS <= bits <= MAX_PAGE_BITS:
        raise ValueError(
            f"page_size must be between {1 << MIN_PAGE_BITS} and {1 << MAX_PAGE_BITS} bytes,"
            f" got {page_size}"
        )
    return bits


def page_of(address: int, page_bits: int) -> int:
    return address >> page_bits


def offset_of(address: int, page_bits: int) -> int:
    return address & ((1 << page_bits) - 1)


def page_start(page: int, page_bits: int) -> int:
    return page << page_bits
