"""Apple model identifiers (``utsname.machine``, e.g. ``iPhone14,8``) -> the product's name.

The iOS SDK sends the raw identifier as ``userDevice``; the reference backend maps it with one
switch (``MapIOSDevice``, MOBILE.md 5.6) that ends with 2022 hardware. No maintained PyPI package
maps these identifiers offline (the ones found are clients of paid web APIs or abandoned), so this
is our own table, built from Apple's published identifiers, extended to the iPhone 16 family.
Names follow the reference backend's (DeviceKit's) spelling. An unknown identifier (an Android
codename, a device newer than the table) is kept as it is.
"""

from __future__ import annotations


def _expand(names: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {identifier: name for name, identifiers in names.items() for identifier in identifiers}


_IPHONES: dict[str, tuple[str, ...]] = {
    "iPhone 4": ("iPhone3,1", "iPhone3,2", "iPhone3,3"),
    "iPhone 4s": ("iPhone4,1",),
    "iPhone 5": ("iPhone5,1", "iPhone5,2"),
    "iPhone 5c": ("iPhone5,3", "iPhone5,4"),
    "iPhone 5s": ("iPhone6,1", "iPhone6,2"),
    "iPhone 6": ("iPhone7,2",),
    "iPhone 6 Plus": ("iPhone7,1",),
    "iPhone 6s": ("iPhone8,1",),
    "iPhone 6s Plus": ("iPhone8,2",),
    "iPhone SE": ("iPhone8,4",),
    "iPhone 7": ("iPhone9,1", "iPhone9,3"),
    "iPhone 7 Plus": ("iPhone9,2", "iPhone9,4"),
    "iPhone 8": ("iPhone10,1", "iPhone10,4"),
    "iPhone 8 Plus": ("iPhone10,2", "iPhone10,5"),
    "iPhone X": ("iPhone10,3", "iPhone10,6"),
    "iPhone XS": ("iPhone11,2",),
    "iPhone XS Max": ("iPhone11,4", "iPhone11,6"),
    "iPhone XR": ("iPhone11,8",),
    "iPhone 11": ("iPhone12,1",),
    "iPhone 11 Pro": ("iPhone12,3",),
    "iPhone 11 Pro Max": ("iPhone12,5",),
    "iPhone SE (2nd generation)": ("iPhone12,8",),
    "iPhone 12 mini": ("iPhone13,1",),
    "iPhone 12": ("iPhone13,2",),
    "iPhone 12 Pro": ("iPhone13,3",),
    "iPhone 12 Pro Max": ("iPhone13,4",),
    "iPhone 13 Pro": ("iPhone14,2",),
    "iPhone 13 Pro Max": ("iPhone14,3",),
    "iPhone 13 mini": ("iPhone14,4",),
    "iPhone 13": ("iPhone14,5",),
    "iPhone SE (3rd generation)": ("iPhone14,6",),
    "iPhone 14": ("iPhone14,7",),
    "iPhone 14 Plus": ("iPhone14,8",),
    "iPhone 14 Pro": ("iPhone15,2",),
    "iPhone 14 Pro Max": ("iPhone15,3",),
    "iPhone 15": ("iPhone15,4",),
    "iPhone 15 Plus": ("iPhone15,5",),
    "iPhone 15 Pro": ("iPhone16,1",),
    "iPhone 15 Pro Max": ("iPhone16,2",),
    "iPhone 16 Pro": ("iPhone17,1",),
    "iPhone 16 Pro Max": ("iPhone17,2",),
    "iPhone 16": ("iPhone17,3",),
    "iPhone 16 Plus": ("iPhone17,4",),
    "iPhone 16e": ("iPhone17,5",),
}

_IPADS: dict[str, tuple[str, ...]] = {
    "iPad 2": ("iPad2,1", "iPad2,2", "iPad2,3", "iPad2,4"),
    "iPad (3rd generation)": ("iPad3,1", "iPad3,2", "iPad3,3"),
    "iPad (4th generation)": ("iPad3,4", "iPad3,5", "iPad3,6"),
    "iPad (5th generation)": ("iPad6,11", "iPad6,12"),
    "iPad (6th generation)": ("iPad7,5", "iPad7,6"),
    "iPad (7th generation)": ("iPad7,11", "iPad7,12"),
    "iPad (8th generation)": ("iPad11,6", "iPad11,7"),
    "iPad (9th generation)": ("iPad12,1", "iPad12,2"),
    "iPad (10th generation)": ("iPad13,18", "iPad13,19"),
    "iPad Air": ("iPad4,1", "iPad4,2", "iPad4,3"),
    "iPad Air 2": ("iPad5,3", "iPad5,4"),
    "iPad Air (3rd generation)": ("iPad11,3", "iPad11,4"),
    "iPad Air (4th generation)": ("iPad13,1", "iPad13,2"),
    "iPad Air (5th generation)": ("iPad13,16", "iPad13,17"),
    "iPad Mini": ("iPad2,5", "iPad2,6", "iPad2,7"),
    "iPad Mini 2": ("iPad4,4", "iPad4,5", "iPad4,6"),
    "iPad Mini 3": ("iPad4,7", "iPad4,8", "iPad4,9"),
    "iPad Mini 4": ("iPad5,1", "iPad5,2"),
    "iPad Mini (5th generation)": ("iPad11,1", "iPad11,2"),
    "iPad Mini (6th generation)": ("iPad14,1", "iPad14,2"),
    "iPad Pro (9.7-inch)": ("iPad6,3", "iPad6,4"),
    "iPad Pro (12.9-inch)": ("iPad6,7", "iPad6,8"),
    "iPad Pro (12.9-inch) (2nd generation)": ("iPad7,1", "iPad7,2"),
    "iPad Pro (10.5-inch)": ("iPad7,3", "iPad7,4"),
    "iPad Pro (11-inch)": ("iPad8,1", "iPad8,2", "iPad8,3", "iPad8,4"),
    "iPad Pro (12.9-inch) (3rd generation)": ("iPad8,5", "iPad8,6", "iPad8,7", "iPad8,8"),
    "iPad Pro (11-inch) (2nd generation)": ("iPad8,9", "iPad8,10"),
    "iPad Pro (12.9-inch) (4th generation)": ("iPad8,11", "iPad8,12"),
    "iPad Pro (11-inch) (3rd generation)": ("iPad13,4", "iPad13,5", "iPad13,6", "iPad13,7"),
    "iPad Pro (12.9-inch) (5th generation)": ("iPad13,8", "iPad13,9", "iPad13,10", "iPad13,11"),
    "iPad Pro (11-inch) (4th generation)": ("iPad14,3", "iPad14,4"),
    "iPad Pro (12.9-inch) (6th generation)": ("iPad14,5", "iPad14,6"),
}

_OTHERS: dict[str, tuple[str, ...]] = {
    "iPod touch (5th generation)": ("iPod5,1",),
    "iPod touch (6th generation)": ("iPod7,1",),
    "iPod touch (7th generation)": ("iPod9,1",),
    "Apple TV": ("AppleTV5,3",),
    "Apple TV 4K": ("AppleTV6,2",),
    "HomePod": ("AudioAccessory1,1",),
    "HomePod mini": ("AudioAccessory5,1",),
    "Simulator": ("i386", "x86_64", "arm64"),
}

IOS_DEVICE_NAMES: dict[str, str] = _expand({**_IPHONES, **_IPADS, **_OTHERS})
"""Model identifier -> readable name."""


def ios_device_name(identifier: str) -> str:
    """The product name of an Apple model identifier; ``identifier`` itself when unknown."""
    return IOS_DEVICE_NAMES.get(identifier, identifier)


def ios_device_type(identifier: str) -> str:
    """``mobile`` for an iPhone, ``tablet`` for an iPad, ``other`` otherwise (as the reference
    backend decides: by the identifier alone, whatever the SDK says the type is)."""
    if "iPhone" in identifier:
        return "mobile"
    if "iPad" in identifier:
        return "tablet"
    return "other"
