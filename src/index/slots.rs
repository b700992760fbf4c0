//! [`SlotSet`]: a bitmap over slots, the eligibility set of a filtered search.

use super::Slot;

/// A set of slots stored as a bitmap, one bit per slot.
///
/// The byte layout is the one FAISS's `IDSelectorBitmap` reads: slot `i` is
/// bit `i & 7` of byte `i >> 3`, so the bytes are handed to FAISS as they are
/// and the filter is applied during the graph traversal. Memory is one bit per
/// slot up to the largest slot inserted (12.5 KB for 100 000 slots).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotSet {
    bits: Vec<u8>,
    len: usize,
}

impl SlotSet {
    /// An empty set with room for slots `0..capacity` before it grows.
    pub fn new(capacity: usize) -> SlotSet {
        SlotSet {
            bits: Vec::with_capacity(capacity.div_ceil(8)),
            len: 0,
        }
    }

    /// Adds `slot`; returns whether it was absent. The bitmap grows as needed.
    pub fn insert(&mut self, slot: Slot) -> bool {
        let (byte, mask) = position(slot);
        if byte >= self.bits.len() {
            self.bits.resize(byte + 1, 0);
        }
        // `byte < self.bits.len()` holds after the resize above.
        let Some(b) = self.bits.get_mut(byte) else {
            return false;
        };
        let absent = *b & mask == 0;
        *b |= mask;
        if absent {
            self.len += 1;
        }
        absent
    }

    /// Removes `slot`; returns whether it was present.
    pub fn remove(&mut self, slot: Slot) -> bool {
        let (byte, mask) = position(slot);
        match self.bits.get_mut(byte) {
            Some(b) if *b & mask != 0 => {
                *b &= !mask;
                self.len -= 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `slot` is in the set.
    pub fn contains(&self, slot: Slot) -> bool {
        let (byte, mask) = position(slot);
        self.bits.get(byte).is_some_and(|b| b & mask != 0)
    }

    /// Number of slots in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the set holds no slot.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slots in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = Slot> + '_ {
        self.bits.iter().enumerate().flat_map(|(i, &b)| {
            (0..8u64)
                .filter(move |bit| (b >> bit) & 1 == 1)
                .map(move |bit| (i as u64) * 8 + bit)
        })
    }

    /// The bitmap in FAISS `IDSelectorBitmap` layout: slot `i` is
    /// `(bytes[i >> 3] >> (i & 7)) & 1`. Slots past the end are absent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// Number of slots present in both `self` and `other`.
    pub fn intersection_len(&self, other: &SlotSet) -> usize {
        self.bits
            .iter()
            .zip(&other.bits)
            .map(|(a, b)| (a & b).count_ones() as usize)
            .sum()
    }

    /// The slots present in both `self` and `other`.
    pub fn intersection(&self, other: &SlotSet) -> SlotSet {
        let bits: Vec<u8> = self
            .bits
            .iter()
            .zip(&other.bits)
            .map(|(a, b)| a & b)
            .collect();
        let len = bits.iter().map(|b| b.count_ones() as usize).sum();
        SlotSet { bits, len }
    }
}

impl FromIterator<Slot> for SlotSet {
    fn from_iter<I: IntoIterator<Item = Slot>>(iter: I) -> SlotSet {
        let mut set = SlotSet::default();
        for slot in iter {
            set.insert(slot);
        }
        set
    }
}

/// Byte index and bit mask of `slot`.
fn position(slot: Slot) -> (usize, u8) {
    // Slots beyond the address space cannot have been inserted; they map to
    // an index no bitmap reaches.
    let byte = usize::try_from(slot >> 3).unwrap_or(usize::MAX);
    (byte, 1u8 << (slot & 7))
}
