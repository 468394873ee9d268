//! Intensities → `u8` (0..255), the range the models and the display take.
//!
//! Mirrors the MedSAM / MedSAM2 preprocessing exactly:
//! - CT (`pre_CT_MR.py` in bowang-lab/MedSAM, `medsam2_infer_3D_CT.py` in
//!   bowang-lab/MedSAM2): `x = clip(x, L - W/2, L + W/2)`, then
//!   `(x - min(x)) / (max(x) - min(x)) * 255` over the whole clipped volume, then
//!   `np.uint8` (truncation). When the volume reaches both window bounds (any CT with air
//!   and bone does) this is the textbook `(x - lower) / (upper - lower) * 255`;
//!   [`WindowLevel::map_value`] is that fixed per-voxel form.
//! - MR (`pre_CT_MR.py`, modality != CT): bounds are the 0.5 and 99.5 percentiles
//!   (`np.percentile`, linear interpolation) of the voxels `> 0`; clip, min-max scale to
//!   0..255 as above, voxels that were exactly 0 stay 0, truncate.
//!
//! Arithmetic is in f64, as numpy does for integer-typed images (CT/MR are int16).

use thiserror::Error;

#[derive(Debug, Error)]
#[error("unknown CT window `{0}` (expected soft, lung, bone or brain)")]
pub struct UnknownWindow(pub String);

/// A window given by its level (centre) and width, in the image's units (HU for CT).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct WindowLevel {
    pub level: f64,
    pub width: f64,
}

impl WindowLevel {
    /// The window `[lower, upper]` (DeepLesion's `DICOM_windows` are given this way).
    pub fn from_bounds(lower: f64, upper: f64) -> Self {
        Self {
            level: (lower + upper) / 2.0,
            width: upper - lower,
        }
    }

    /// `(L - W/2, L + W/2)`, as MedSAM computes them.
    pub fn bounds(&self) -> (f64, f64) {
        (self.level - self.width / 2.0, self.level + self.width / 2.0)
    }

    /// The fixed window map of one value: `(clip(x) - lower) / (upper - lower) * 255`,
    /// truncated. Equal to [`Windowing::apply`] on volumes that reach both bounds; for
    /// display of single voxels or slices.
    pub fn map_value(&self, x: f32) -> u8 {
        let (lo, hi) = self.bounds();
        if hi <= lo {
            return 0;
        }
        let x = (x as f64).clamp(lo, hi);
        ((x - lo) / (hi - lo) * 255.0) as u8
    }
}

/// CT window presets (radiopaedia's, as in MedSAM's scripts: soft tissue is their default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtWindow {
    /// W400 / L40 (MedSAM's default for abdomen CT).
    SoftTissue,
    /// W1500 / L-600.
    Lung,
    /// W1800 / L400.
    Bone,
    /// W80 / L40.
    Brain,
}

impl CtWindow {
    /// `soft` (also `soft-tissue`, `abdomen`), `lung`, `bone`, `brain`; case-insensitive.
    pub fn parse(s: &str) -> Result<Self, UnknownWindow> {
        match s.trim().to_ascii_lowercase().as_str() {
            "soft" | "soft-tissue" | "soft_tissue" | "softtissue" | "abdomen" => {
                Ok(CtWindow::SoftTissue)
            }
            "lung" => Ok(CtWindow::Lung),
            "bone" => Ok(CtWindow::Bone),
            "brain" => Ok(CtWindow::Brain),
            _ => Err(UnknownWindow(s.to_owned())),
        }
    }

    /// Level and width in HU.
    pub fn window_level(self) -> WindowLevel {
        let (width, level) = match self {
            CtWindow::SoftTissue => (400.0, 40.0),
            CtWindow::Lung => (1500.0, -600.0),
            CtWindow::Bone => (1800.0, 400.0),
            CtWindow::Brain => (80.0, 40.0),
        };
        WindowLevel { level, width }
    }
}

/// How to bring a volume's intensities to 0..255.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Windowing {
    /// Data already in 0..255 (MedSAM npz, PNG): clip to 0..255 and truncate.
    None,
    /// CT window, MedSAM2's formula.
    Ct(WindowLevel),
    /// MR: 0.5–99.5 percentiles of the positive voxels, zeros stay 0.
    MrPercentile,
}

impl From<CtWindow> for Windowing {
    fn from(w: CtWindow) -> Self {
        Windowing::Ct(w.window_level())
    }
}

impl Windowing {
    /// Maps a whole volume (or image) to u8, as the MedSAM preprocessing does. A volume
    /// whose clipped range is a single value (numpy would divide 0 by 0) maps to zeros.
    pub fn apply(&self, data: &[f32]) -> Vec<u8> {
        match *self {
            Windowing::None => data
                .iter()
                .map(|&v| (v as f64).clamp(0.0, 255.0) as u8)
                .collect(),
            Windowing::Ct(w) => {
                let (lo, hi) = w.bounds();
                clip_and_rescale(data, lo, hi, false)
            }
            Windowing::MrPercentile => {
                let mut positive: Vec<f32> = data.iter().copied().filter(|&v| v > 0.0).collect();
                if positive.is_empty() {
                    return vec![0; data.len()];
                }
                let lo = percentile(&mut positive, 0.5);
                let hi = percentile(&mut positive, 99.5);
                clip_and_rescale(data, lo, hi, true)
            }
        }
    }
}

/// The windows a user picks by name: the CT presets, MR percentiles, or none (8-bit
/// data as stored). One parser and one automatic choice for the CLI and the browser, so
/// that both give the model the same input for the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowPreset {
    /// 8-bit data as stored (clip to 0..255).
    None,
    /// MR: 0.5–99.5 percentiles of the positive voxels.
    Mr,
    Ct(CtWindow),
}

/// A window name that is none of [`WindowPreset`]'s.
#[derive(Debug, Error)]
#[error(
    "unknown window `{0}` (expected soft, lung, bone, brain, mr, none, or auto for the automatic choice)"
)]
pub struct UnknownWindowPreset(pub String);

impl WindowPreset {
    /// Every preset, in the order a picker lists them.
    pub const ALL: [WindowPreset; 6] = [
        WindowPreset::Ct(CtWindow::SoftTissue),
        WindowPreset::Ct(CtWindow::Lung),
        WindowPreset::Ct(CtWindow::Bone),
        WindowPreset::Ct(CtWindow::Brain),
        WindowPreset::Mr,
        WindowPreset::None,
    ];

    /// `soft` (and [`CtWindow::parse`]'s aliases), `lung`, `bone`, `brain`, `mr` (`mri`),
    /// `none` (`raw`); case-insensitive. `auto` and the empty string are `Ok(None)`: the
    /// caller picks with [`WindowPreset::auto`].
    pub fn parse(s: &str) -> Result<Option<Self>, UnknownWindowPreset> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(None),
            "none" | "raw" => Ok(Some(WindowPreset::None)),
            "mr" | "mri" => Ok(Some(WindowPreset::Mr)),
            other => CtWindow::parse(other)
                .map(|w| Some(WindowPreset::Ct(w)))
                .map_err(|_| UnknownWindowPreset(s.to_owned())),
        }
    }

    /// The short name [`WindowPreset::parse`] takes back.
    pub fn name(self) -> &'static str {
        match self {
            WindowPreset::None => "none",
            WindowPreset::Mr => "mr",
            WindowPreset::Ct(CtWindow::SoftTissue) => "soft",
            WindowPreset::Ct(CtWindow::Lung) => "lung",
            WindowPreset::Ct(CtWindow::Bone) => "bone",
            WindowPreset::Ct(CtWindow::Brain) => "brain",
        }
    }

    /// The window for a freshly opened volume, from its stored type and value range:
    /// 8-bit data as stored (MedSAM's already windowed volumes); data with values below
    /// -200 is Hounsfield units (CT air is -1000), so the soft-tissue preset MedSAM uses
    /// for CT by default; other data inside 0..255 as stored; anything else MR
    /// percentiles.
    pub fn auto(stored_as_8_bit: bool, values: &[f32]) -> Self {
        if stored_as_8_bit {
            return WindowPreset::None;
        }
        let (lo, hi) = value_range(values);
        if is_hounsfield(stored_as_8_bit, lo) {
            WindowPreset::Ct(CtWindow::SoftTissue)
        } else if lo >= 0.0 && hi <= 255.0 {
            WindowPreset::None
        } else {
            WindowPreset::Mr
        }
    }

    /// The fixed window that shows a volume through this preset one slice at a time
    /// (display only: the model's input is [`WindowPreset::windowing`] of the whole
    /// volume): a CT preset's own level and width, the MR percentile bounds of `values`,
    /// or 0..255 for none.
    pub fn display_window(self, values: &[f32]) -> WindowLevel {
        match self {
            WindowPreset::Ct(w) => w.window_level(),
            WindowPreset::None => WindowLevel::from_bounds(0.0, 255.0),
            WindowPreset::Mr => {
                let mut positive: Vec<f32> = values.iter().copied().filter(|&v| v > 0.0).collect();
                if positive.is_empty() {
                    return WindowLevel::from_bounds(0.0, 255.0);
                }
                let lo = percentile(&mut positive, 0.5);
                let hi = percentile(&mut positive, 99.5);
                WindowLevel::from_bounds(lo, hi)
            }
        }
    }

    pub fn windowing(self) -> Windowing {
        match self {
            WindowPreset::None => Windowing::None,
            WindowPreset::Mr => Windowing::MrPercentile,
            WindowPreset::Ct(w) => w.into(),
        }
    }
}

/// The smallest and largest value (`(inf, -inf)` for none).
pub fn value_range(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Whether values whose minimum is `min` are CT Hounsfield units: not stored as 8 bits,
/// and below -200 somewhere (air is -1000 HU; MR and 8-bit data are never negative).
pub fn is_hounsfield(stored_as_8_bit: bool, min: f32) -> bool {
    !stored_as_8_bit && min < -200.0
}

/// `np.clip(x, lo, hi)`, then `(x - min) / (max - min) * 255` over the clipped values,
/// then truncation; with `zeros_stay`, voxels that were 0 are 0.
fn clip_and_rescale(data: &[f32], lo: f64, hi: f64, zeros_stay: bool) -> Vec<u8> {
    let clip = |v: f32| (v as f64).max(lo).min(hi);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in data {
        let c = clip(v);
        min = min.min(c);
        max = max.max(c);
    }
    let range = max - min;
    // Empty input, a constant volume, or bounds that are not numbers: numpy's 0/0.
    if range.is_nan() || range <= 0.0 {
        return vec![0; data.len()];
    }
    data.iter()
        .map(|&v| {
            if zeros_stay && v == 0.0 {
                0
            } else {
                ((clip(v) - min) / range * 255.0) as u8
            }
        })
        .collect()
}

/// `np.percentile(values, q)` with numpy's default (linear) method; reorders `values`.
/// `values` must not be empty and holds no NaN.
fn percentile(values: &mut [f32], q: f64) -> f64 {
    let n = values.len();
    // numpy: virtual index q/100 * (n - 1), gamma its fractional part.
    let virtual_index = (q / 100.0) * (n as f64 - 1.0);
    let below = virtual_index.floor();
    let gamma = virtual_index - below;
    let i = (below as usize).min(n - 1);
    let j = (i + 1).min(n - 1);
    let (_, a, rest) = values.select_nth_unstable_by(i, f32::total_cmp);
    let a = *a as f64;
    let b = if j == i {
        a
    } else {
        // The smallest of the values above index i is the (i+1)-th.
        rest.iter().copied().fold(f32::INFINITY, f32::min) as f64
    };
    // numpy's `_lerp`: a + (b - a) * t, computed from the upper end when t >= 0.5.
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_parse() {
        assert_eq!(CtWindow::parse("soft").unwrap(), CtWindow::SoftTissue);
        assert_eq!(CtWindow::parse("Lung").unwrap(), CtWindow::Lung);
        assert_eq!(CtWindow::parse("bone").unwrap(), CtWindow::Bone);
        assert_eq!(CtWindow::parse("brain").unwrap(), CtWindow::Brain);
        assert!(CtWindow::parse("liver").is_err());
        assert_eq!(
            CtWindow::SoftTissue.window_level().bounds(),
            (-160.0, 240.0)
        );
        assert_eq!(CtWindow::Lung.window_level().bounds(), (-1350.0, 150.0));
        assert_eq!(CtWindow::Bone.window_level().bounds(), (-500.0, 1300.0));
        assert_eq!(CtWindow::Brain.window_level().bounds(), (0.0, 80.0));
        let w = WindowLevel::from_bounds(-160.0, 240.0);
        assert_eq!(w, CtWindow::SoftTissue.window_level());
    }

    #[test]
    fn preset_names_round_trip_and_auto_picks_by_range() {
        for p in WindowPreset::ALL {
            assert_eq!(WindowPreset::parse(p.name()).unwrap(), Some(p));
        }
        assert_eq!(WindowPreset::parse(" Auto ").unwrap(), None);
        assert_eq!(WindowPreset::parse("").unwrap(), None);
        assert_eq!(WindowPreset::parse("MRI").unwrap(), Some(WindowPreset::Mr));
        assert_eq!(
            WindowPreset::parse("abdomen").unwrap(),
            Some(WindowPreset::Ct(CtWindow::SoftTissue))
        );
        let e = WindowPreset::parse("liver").unwrap_err().to_string();
        assert!(e.contains("liver") && e.contains("auto"), "{e}");
        // Hounsfield units (air at -1000): the soft-tissue CT window.
        assert_eq!(
            WindowPreset::auto(false, &[-1024.0, 40.0, 1500.0]),
            WindowPreset::Ct(CtWindow::SoftTissue)
        );
        // 8-bit by type or by range: as stored; anything else: MR percentiles.
        assert_eq!(WindowPreset::auto(true, &[-5000.0]), WindowPreset::None);
        assert_eq!(WindowPreset::auto(false, &[0.0, 255.0]), WindowPreset::None);
        assert_eq!(WindowPreset::auto(false, &[0.0, 4095.0]), WindowPreset::Mr);
        assert_eq!(
            WindowPreset::auto(false, &[-100.0, 300.0]),
            WindowPreset::Mr
        );
    }

    #[test]
    fn ct_window_maps_bounds_and_clips() {
        let w = CtWindow::SoftTissue.window_level();
        // A volume spanning air to bone: the fixed-window formula.
        let data = [-1000.0, -160.0, -60.0, 40.0, 140.0, 240.0, 3000.0];
        let out = Windowing::Ct(w).apply(&data);
        assert_eq!(out, vec![0, 0, 63, 127, 191, 255, 255]);
        for (v, o) in data.iter().zip(&out) {
            assert_eq!(w.map_value(*v), *o);
        }
        // MedSAM2 rescales by the clipped volume's own min/max: a volume inside the window
        // is stretched to 0..255.
        assert_eq!(
            Windowing::Ct(w).apply(&[0.0, 50.0, 100.0]),
            vec![0, 127, 255]
        );
        // A constant volume maps to zeros (numpy: 0/0).
        assert_eq!(Windowing::Ct(w).apply(&[5.0, 5.0]), vec![0, 0]);
    }

    #[test]
    fn none_clips_and_truncates() {
        assert_eq!(
            Windowing::None.apply(&[-3.0, 0.0, 17.9, 255.0, 300.0]),
            vec![0, 0, 17, 255, 255]
        );
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        // np.percentile(np.arange(1, 11), [0.5, 50, 99.5]) = [1.045, 5.5, 9.955]
        let mut v: Vec<f32> = (1..=10).rev().map(|x| x as f32).collect();
        assert!((percentile(&mut v, 0.5) - 1.045).abs() < 1e-12);
        assert!((percentile(&mut v, 50.0) - 5.5).abs() < 1e-12);
        assert!((percentile(&mut v, 99.5) - 9.955).abs() < 1e-12);
        let mut one = vec![4.0f32];
        assert_eq!(percentile(&mut one, 99.5), 4.0);
    }

    #[test]
    fn mr_percentile_keeps_zeros() {
        // 1..=200, background zeros and one outlier (int16). The expected values come from
        // running MedSAM's MR lines (`pre_CT_MR.py`) with numpy 2.4 on the same array:
        // bounds (2.0, 200.0) — percentiles of the positive voxels only — and the first ten
        // outputs below; 100 → 126; the outlier → 255; zeros stay 0.
        let mut data: Vec<f32> = (1..=200).map(|x| x as f32).collect();
        data.extend([0.0; 50]);
        data.push(10_000.0);
        let mut pos: Vec<f32> = data.iter().copied().filter(|&v| v > 0.0).collect();
        assert_eq!(percentile(&mut pos, 0.5), 2.0);
        assert_eq!(percentile(&mut pos, 99.5), 200.0);
        let out = Windowing::MrPercentile.apply(&data);
        assert_eq!(out[..10], [0, 0, 1, 2, 3, 5, 6, 7, 9, 10]);
        assert_eq!(out[99], 126);
        assert_eq!(*out.last().unwrap(), 255);
        assert!(out[200..250].iter().all(|&v| v == 0));
        // No positive voxel at all: zeros, no panic.
        assert_eq!(Windowing::MrPercentile.apply(&[0.0, -1.0]), vec![0, 0]);
    }
}
