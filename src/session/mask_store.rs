//! Compact storage of output masks: run-length encoded, row-major.

/// A binary mask as alternating run lengths, starting with a background run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RleMask {
    pub width: usize,
    pub height: usize,
    runs: Vec<u32>,
}

impl RleMask {
    /// Encodes `mask` (`0` = background, anything else = object).
    pub fn encode(mask: &[u8], width: usize, height: usize) -> Self {
        debug_assert_eq!(mask.len(), width * height);
        let mut runs = Vec::new();
        let mut current = false;
        let mut len = 0u32;
        for &m in mask {
            let v = m != 0;
            if v != current {
                runs.push(len);
                current = v;
                len = 0;
            }
            len += 1;
        }
        runs.push(len);
        Self {
            width,
            height,
            runs,
        }
    }

    /// An all-background mask.
    pub fn empty(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            runs: vec![(width * height) as u32],
        }
    }

    pub fn decode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.width * self.height);
        for (i, &r) in self.runs.iter().enumerate() {
            out.extend(std::iter::repeat_n((i % 2) as u8, r as usize));
        }
        out
    }

    /// Bytes its runs take on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.runs.len() * std::mem::size_of::<u32>()
    }

    /// Number of object pixels.
    pub fn area(&self) -> usize {
        self.runs
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&r| r as usize)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_counts() {
        let m = [1u8, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0];
        let r = RleMask::encode(&m, 4, 3);
        assert_eq!(
            r.decode(),
            m.iter().map(|&v| (v != 0) as u8).collect::<Vec<_>>()
        );
        assert_eq!(r.area(), 6);
        assert_eq!(RleMask::empty(3, 2).decode(), vec![0; 6]);
        assert_eq!(RleMask::empty(3, 2).area(), 0);
    }
}
