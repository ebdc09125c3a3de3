"""The authenticity tag: COSE_Mac0 (RFC 9052), HMAC 256/64, compact profile.

On the wire only the 8-byte tag travels; the constant parts of COSE_Mac0
(the protected header {1: 4} and the structure around it) are rebuilt by
the receiver. external_aad binds the tag to the device and the port, so a
network operator can neither forge counts nor move a valid frame to another
device or message type.
"""
import hashlib
import hmac

from .contract import TAG_LEN

# CBOR of ["MAC0", h'a10104', ...]: array(4), text "MAC0", bstr(3) {1: 4}
_MAC0_PREFIX = bytes.fromhex("84644d414330" "43a10104")


def _bstr_head(n):
    if n < 24:
        return bytes([0x40 | n])
    if n < 256:
        return bytes([0x58, n])
    return bytes([0x59, n >> 8, n & 0xFF])


def mac_structure(message, dev_eui, fport):
    """The COSE MAC_structure bytes the tag is computed over."""
    aad = bytes(dev_eui) + bytes([fport])
    return _MAC0_PREFIX + _bstr_head(len(aad)) + aad + _bstr_head(len(message)) + bytes(message)


def compute_tag(message, dev_eui, fport, key):
    """8-byte tag over `message` for the device `dev_eui` on `fport`."""
    if len(dev_eui) != 8:
        raise ValueError("dev_eui must be 8 bytes")
    if len(key) != 32:
        raise ValueError("tag key must be 32 bytes")
    return hmac.new(bytes(key), mac_structure(message, dev_eui, fport), hashlib.sha256).digest()[:TAG_LEN]


def check_tag(tag, message, dev_eui, fport, key):
    """True when `tag` is the right tag (constant-time comparison)."""
    return hmac.compare_digest(bytes(tag), compute_tag(message, dev_eui, fport, key))
