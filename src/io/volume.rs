//! 3-D volumes: NIfTI-1 (`.nii`, `.nii.gz`) and MedSAM-style `.npz` readers, and a
//! NIfTI-1 mask writer, all working on bytes (no file system: this runs in the browser).
//!
//! What it mirrors:
//! - NIfTI-1 as nibabel reads it: voxel `(i, j, k)` of a volume with `dim = (nx, ny, nz)`
//!   is `data[i + nx * (j + ny * k)]` (x fastest), scaled by `scl_slope`/`scl_inter` when
//!   the slope is finite and non-zero, spacing from `pixdim[1..=3]`, and the affine chosen as
//!   `Nifti1Header.get_best_affine` does (sform, else qform, else the base affine).
//!   A time axis (`dim[4] = t`, ultrasound and cine MR sequences) is read into a
//!   [`VolumeSeries`]: `t` volumes of the one 3-D geometry, time slowest (`nibabel`'s
//!   `get_fdata()[..., t]`); `pixdim[4]` (the time step) and the time unit in `xyzt_units`
//!   are kept for writing but take no part in the 3-D affine. `dim[5..=7] > 1` is refused.
//! - MedSAM's 2-D npz layout, `imgs` (H, W, 3) RGB, is refused with a pointer to the image
//!   files: only the 3-D (D, H, W) layout is a volume.
//! - MedSAM's `.npz` (`pre_CT_MR.py`: `np.savez_compressed(imgs=D×H×W, gts=D×H×W,
//!   spacing=sitk.GetSpacing())`): `imgs[k][j][i]` is slice k, row j, column i and
//!   `spacing` is (x, y, z).
//!
//! Both layouts are the same flat buffer: [`Volume::data`] is slice-major
//! (`data[(k * ny + j) * nx + i]`), i.e. the NIfTI voxel order and the C order of the npz
//! array, so neither reader transposes anything.
//!
//! Why not the `nifti` crate: it reads from an in-memory reader, but its writer
//! (`WriterOptions`) only writes to file paths (not usable in the browser) and needs the
//! `ndarray` feature; a mask writer would have to be written here anyway, and the parts we
//! need (one 348-byte header, seven datatypes, gzip) are small. Its dependency tree
//! (num-derive/syn, quick-error, rgb, num-complex, bytemuck, approx, byteordered) would be
//! new to this crate. Reading ourselves also lets us check the voxel count against a limit
//! before any allocation and name truncated gzip vs truncated data exactly.
//! For `.npy` inside the `.npz` the `npyz` crate is used (default features off), the zip
//! archive is read with the crate's existing `zip` 2 dependency.

use std::io::{Cursor, Read};

use flate2::read::MultiGzDecoder;
use thiserror::Error;

/// The largest volume accepted, checked before allocating anything: 2^31 voxels
/// natively. In the browser 2^28 (512 × 512 × 1024): a wasm32 module has at most 4 GB,
/// and opening a volume holds its file, the decoded samples, 4 bytes a voxel as `f32`
/// and 1 byte a voxel for display at once; past the limit the allocation would abort
/// the engine and lose the session.
#[cfg(not(target_arch = "wasm32"))]
pub const MAX_VOXELS: u64 = 1 << 31;
#[cfg(target_arch = "wasm32")]
pub const MAX_VOXELS: u64 = 1 << 28;

/// Size of the NIfTI-1 header.
const NIFTI1_HEADER_LEN: usize = 348;
/// Header plus the 4-byte extension flag: the data offset of a `.nii` without extensions.
const NIFTI1_MIN_VOX_OFFSET: usize = 352;

/// Errors from reading or writing volumes.
#[derive(Debug, Error)]
pub enum VolumeError {
    #[error("the file is empty")]
    Empty,
    #[error("not a NIfTI-1 (.nii / .nii.gz) or MedSAM .npz file: {0}")]
    UnknownFormat(String),
    #[error("truncated or corrupt gzip stream: {0}")]
    Gzip(String),
    #[error("truncated NIfTI header: {got} bytes, a NIfTI-1 header has 348")]
    TruncatedHeader { got: usize },
    #[error(
        "truncated data: the header promises {expected} bytes of voxels from byte {offset}, \
         the file has only {available} bytes there"
    )]
    TruncatedData {
        offset: u64,
        expected: u64,
        available: u64,
    },
    #[error("invalid NIfTI header: {0}")]
    InvalidHeader(String),
    #[error(
        "unsupported NIfTI datatype code {0} (supported: uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64)"
    )]
    UnsupportedDatatype(i16),
    #[error("unsupported .npy dtype `{0}` (supported: bool, (u)int8..64, float32, float64)")]
    UnsupportedDtype(String),
    #[error("dimensions {0:?} contain a zero: the volume has no voxels")]
    ZeroDim(Vec<usize>),
    #[error(
        "volume too large: {voxels} voxels exceed the limit of {MAX_VOXELS} (2^{}){}",
        MAX_VOXELS.trailing_zeros(),
        if cfg!(target_arch = "wasm32") { " in the browser: crop or resample it, or use the medseg command line" } else { "" }
    )]
    TooLarge { voxels: u128 },
    #[error(
        "`{key}` has shape {shape:?}, a {}-D array: a volume is a 3-D (D, H, W) array of slices",
        shape.len()
    )]
    UnsupportedShape { key: String, shape: Vec<u64> },
    #[error(
        "`{key}` has shape {shape:?}, MedSAM's 2-D layout (H, W, channels) of an RGB image: \
         open the image (PNG or JPEG) itself; a volume's `{key}` is (D, H, W)"
    )]
    RgbImageArray { key: String, shape: Vec<u64> },
    #[error(
        "a 4-D NIfTI of {time_points} time points of {}×{}×{} voxels: only one 3-D volume \
         can be read here (`medseg track --volume T` and the page open one time point)",
        dims[0], dims[1], dims[2]
    )]
    TimeSeries {
        dims: [usize; 3],
        time_points: usize,
    },
    #[error(
        "time point {wanted} is outside the {time_points} time point(s) of the file (0..{})",
        time_points - 1
    )]
    TimePointOutOfRange { wanted: usize, time_points: usize },
    #[error("npz: {0}")]
    Npz(String),
    #[error("npz has no array {wanted} (it has: {found})")]
    MissingArray { wanted: String, found: String },
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    #[error("mask has {got} voxels, the volume geometry {dims:?} has {expected}")]
    MaskLength {
        got: usize,
        expected: usize,
        /// `[nx, ny, nz]`, then the time points when there are several.
        dims: Vec<usize>,
    },
    #[error(
        "not enough memory: {what} needs {bytes} bytes{}",
        if cfg!(target_arch = "wasm32") { " in the browser: crop or resample the volume, or use the medseg command line" } else { "" }
    )]
    OutOfMemory { what: &'static str, bytes: u64 },
}

/// An empty buffer with room for `voxels` f32 values, or [`VolumeError::OutOfMemory`]:
/// a volume under [`MAX_VOXELS`] may still not fit (in the browser the module's 4 GB hold
/// the file and the model too), and a failed allocation must be a message, not an abort.
fn voxel_buffer(voxels: usize) -> Result<Vec<f32>, VolumeError> {
    let mut out = Vec::new();
    out.try_reserve_exact(voxels)
        .map_err(|_| VolumeError::OutOfMemory {
            what: "the volume as 32-bit floats",
            bytes: voxels as u64 * 4,
        })?;
    Ok(out)
}

/// The element type a volume was stored with (its voxels are widened to `f32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DataType {
    /// The NIfTI-1 `datatype` code (`Bool` is stored as uint8).
    pub fn nifti_code(self) -> i16 {
        match self {
            DataType::Bool | DataType::U8 => 2,
            DataType::I16 => 4,
            DataType::I32 => 8,
            DataType::F32 => 16,
            DataType::F64 => 64,
            DataType::I8 => 256,
            DataType::U16 => 512,
            DataType::U32 => 768,
            DataType::I64 => 1024,
            DataType::U64 => 1280,
        }
    }

    fn from_nifti_code(code: i16) -> Option<Self> {
        Some(match code {
            2 => DataType::U8,
            4 => DataType::I16,
            8 => DataType::I32,
            16 => DataType::F32,
            64 => DataType::F64,
            256 => DataType::I8,
            512 => DataType::U16,
            768 => DataType::U32,
            1024 => DataType::I64,
            1280 => DataType::U64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
        }
    }
}

/// Where a volume came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Nifti,
    NiftiGz,
    Npz,
    /// A DICOM series or multi-frame file (`crate::io::dicom::series`).
    Dicom,
}

/// The NIfTI-1 header fields that place a volume in space: what a mask written for this
/// volume must copy so that nibabel (and ITK) see the same affine. Values are kept as
/// stored (`f32`), so that copying them is bit-exact.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiGeometry {
    /// Number of spatial dimensions in the source header (`dim[0]`, 2 or 3).
    pub ndim: u16,
    /// `[nx, ny, nz]` (nz = 1 for 2-D).
    pub dims: [usize; 3],
    /// `dim[4]`: how many 3-D volumes the file holds along time (1: no time axis). Masks
    /// over all of them are written 4-D, `(nx, ny, nz, t)`, so that they overlay the
    /// source in a viewer.
    pub time_points: usize,
    /// `pixdim[0..8]`; `pixdim[0]` is qfac, `pixdim[1..=3]` the voxel size.
    pub pixdim: [f32; 8],
    pub dim_info: u8,
    pub xyzt_units: u8,
    pub qform_code: i16,
    pub sform_code: i16,
    /// `quatern_b, quatern_c, quatern_d`.
    pub quatern: [f32; 3],
    /// `qoffset_x, qoffset_y, qoffset_z`.
    pub qoffset: [f32; 3],
    /// `srow_x, srow_y, srow_z`.
    pub srow: [[f32; 4]; 3],
}

impl NiftiGeometry {
    /// Geometry for a volume that has no NIfTI header (a MedSAM `.npz`): voxel size
    /// `spacing` (x, y, z mm), origin 0, axes aligned, written as nibabel writes a new
    /// image: `sform_code` 2 (aligned) with `srow = diag(spacing)`, `qform_code` 0.
    /// The npz `direction`/`origin` arrays (SimpleITK, LPS) are not used; the NIfTI
    /// copies of the test data were made the same way.
    pub fn from_spacing(dims: [usize; 3], spacing: [f64; 3]) -> Self {
        let s = spacing.map(|v| v as f32);
        Self {
            ndim: 3,
            dims,
            time_points: 1,
            pixdim: [1.0, s[0], s[1], s[2], 1.0, 1.0, 1.0, 1.0],
            dim_info: 0,
            xyzt_units: 2, // millimetres, no time unit
            qform_code: 0,
            sform_code: 2,
            quatern: [0.0; 3],
            qoffset: [0.0; 3],
            srow: [
                [s[0], 0.0, 0.0, 0.0],
                [0.0, s[1], 0.0, 0.0],
                [0.0, 0.0, s[2], 0.0],
            ],
        }
    }

    /// The voxel grid with the time axis when there is one: `[nx, ny, nz]` or
    /// `[nx, ny, nz, t]`.
    pub fn shape(&self) -> Vec<usize> {
        let mut shape = self.dims.to_vec();
        if self.time_points > 1 {
            shape.push(self.time_points);
        }
        shape
    }

    /// Voxel size (x, y, z) in mm: `|pixdim[1..=3]|`, a zero or non-finite entry read as 1
    /// (a 2-D header often leaves `pixdim[3]` at 0).
    pub fn spacing(&self) -> [f64; 3] {
        [1, 2, 3].map(|a| {
            let v = (self.pixdim[a] as f64).abs();
            if v.is_finite() && v > 0.0 { v } else { 1.0 }
        })
    }

    /// The voxel-to-world affine (4×4, row-major) as nibabel's `get_best_affine`: the sform
    /// when `sform_code > 0`, else the qform when `qform_code > 0`, else nibabel's base
    /// affine (x flipped, centred). Computed in f64 from the stored f32 fields.
    pub fn affine(&self) -> [[f64; 4]; 4] {
        let mut a = [[0.0; 4]; 4];
        a[3][3] = 1.0;
        if self.sform_code > 0 {
            for (r, row) in self.srow.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    a[r][c] = *v as f64;
                }
            }
        } else if self.qform_code > 0 {
            let [b, c, d] = self.quatern.map(|v| v as f64);
            // NIfTI-1: a = sqrt(1 - b² - c² - d²), 0 when rounding makes it negative.
            let a2 = 1.0 - (b * b + c * c + d * d);
            let qa = if a2 > 0.0 { a2.sqrt() } else { 0.0 };
            let r = [
                [
                    qa * qa + b * b - c * c - d * d,
                    2.0 * (b * c - qa * d),
                    2.0 * (b * d + qa * c),
                ],
                [
                    2.0 * (b * c + qa * d),
                    qa * qa + c * c - b * b - d * d,
                    2.0 * (c * d - qa * b),
                ],
                [
                    2.0 * (b * d - qa * c),
                    2.0 * (c * d + qa * b),
                    qa * qa + d * d - c * c - b * b,
                ],
            ];
            // qfac (pixdim[0]) is -1 or 1; anything else counts as 1.
            let qfac = if self.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
            let zooms = [
                self.pixdim[1] as f64,
                self.pixdim[2] as f64,
                self.pixdim[3] as f64 * qfac,
            ];
            for (i, row) in r.iter().enumerate() {
                for j in 0..3 {
                    a[i][j] = row[j] * zooms[j];
                }
                a[i][3] = self.qoffset[i] as f64;
            }
        } else {
            // nibabel `shape_zoom_affine(shape, zooms, x_flip=True)`.
            let zooms = [
                -(self.pixdim[1] as f64),
                self.pixdim[2] as f64,
                if self.ndim >= 3 {
                    self.pixdim[3] as f64
                } else {
                    1.0
                },
            ];
            for i in 0..3 {
                a[i][i] = zooms[i];
                a[i][3] = -((self.dims[i] as f64 - 1.0) / 2.0) * zooms[i];
            }
        }
        a
    }
}

/// A 3-D scalar volume: voxels widened to `f32`, slice-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Voxel `(slice k, row j, column i)` is `data[(k * ny + j) * nx + i]`: the NIfTI
    /// order (x fastest) and the C order of MedSAM's `imgs[k][j][i]`. NIfTI scaling
    /// (`scl_slope`, `scl_inter`) is applied. Integers above 2^24 lose precision.
    pub data: Vec<f32>,
    /// `[nx, ny, nz]` = (width, height, depth); a 2-D image has nz = 1. The time points
    /// of a single-slice series ([`VolumeSeries::into_time_frames`]) are its slices:
    /// `[nx, ny, t]`.
    pub dims: [usize; 3],
    /// Voxel size (x, y, z) in mm.
    pub spacing: [f64; 3],
    /// Where the voxels are in space; what [`write_nifti_mask`] copies. Its voxel count
    /// (time points included) is always `data.len()`.
    pub geometry: NiftiGeometry,
    /// The element type in the file.
    pub dtype: DataType,
    pub format: SourceFormat,
}

impl Volume {
    /// Reads a volume, telling the format from the content: gzip (`.nii.gz`), zip
    /// (`.npz`, array `imgs`), else an uncompressed `.nii`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VolumeError> {
        Self::from_bytes_with_npz_keys(bytes, &["imgs"])
    }

    /// As [`Volume::from_bytes`], taking the first of `npz_keys` that an `.npz` holds
    /// (e.g. `["segs", "gts"]` for a mask). A NIfTI with several time points is refused
    /// ([`VolumeError::TimeSeries`]; [`VolumeSeries`] reads it).
    pub fn from_bytes_with_npz_keys(bytes: &[u8], npz_keys: &[&str]) -> Result<Self, VolumeError> {
        VolumeSeries::from_bytes_with_npz_keys(bytes, npz_keys)?.into_volume()
    }

    /// Reads a NIfTI-1 single file, gzipped (`.nii.gz`, told by the gzip magic) or not;
    /// one with several time points is refused ([`VolumeError::TimeSeries`]).
    pub fn from_nifti_bytes(bytes: &[u8]) -> Result<Self, VolumeError> {
        VolumeSeries::from_nifti_bytes(bytes)?.into_volume()
    }

    /// Reads the first of `keys` (e.g. `["imgs"]`) from a MedSAM `.npz`: a (D, H, W)
    /// array of any integer, bool or float dtype, C or Fortran order, plus `spacing`
    /// (x, y, z; (1, 1, 1) when the archive has none).
    pub fn from_npz_bytes(bytes: &[u8], keys: &[&str]) -> Result<Self, VolumeError> {
        if bytes.is_empty() {
            return Err(VolumeError::Empty);
        }
        read_npz(bytes, keys)
    }

    /// Width (`nx`, columns i).
    pub fn width(&self) -> usize {
        self.dims[0]
    }

    /// Height (`ny`, rows j).
    pub fn height(&self) -> usize {
        self.dims[1]
    }

    /// Depth (`nz`, slices k).
    pub fn depth(&self) -> usize {
        self.dims[2]
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the volume has no voxels (never true for a volume that was read).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Voxel at slice `k`, row `j`, column `i`.
    pub fn get(&self, k: usize, j: usize, i: usize) -> f32 {
        self.data[(k * self.dims[1] + j) * self.dims[0] + i]
    }

    /// Slice `k` as `ny` rows of `nx` voxels.
    pub fn slice(&self, k: usize) -> &[f32] {
        let n = self.dims[0] * self.dims[1];
        &self.data[k * n..(k + 1) * n]
    }

    /// Binary mask: 1 where the voxel is non-zero.
    pub fn to_mask(&self) -> Vec<u8> {
        self.data.iter().map(|&v| u8::from(v != 0.0)).collect()
    }
}

/// What a volume file holds with its time axis: `time_points` 3-D volumes of one
/// geometry (a NIfTI's `dim[4]`; 1 for a 3-D NIfTI and for every `.npz`).
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSeries {
    /// Time point `t` is `data[t * n..(t + 1) * n]` (`n = nx * ny * nz`), each laid out
    /// as [`Volume::data`]: the NIfTI order, time slowest. Scaling applied.
    pub data: Vec<f32>,
    /// The 3-D geometry every time point shares, with the number of time points.
    pub geometry: NiftiGeometry,
    /// Voxel size (x, y, z) in mm (an npz's `spacing` as stored, in f64).
    pub spacing: [f64; 3],
    pub dtype: DataType,
    pub format: SourceFormat,
}

impl VolumeSeries {
    /// Reads a NIfTI-1 (with or without a time axis) or a MedSAM `.npz` (array `imgs`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VolumeError> {
        Self::from_bytes_with_npz_keys(bytes, &["imgs"])
    }

    fn from_bytes_with_npz_keys(bytes: &[u8], npz_keys: &[&str]) -> Result<Self, VolumeError> {
        if bytes.is_empty() {
            return Err(VolumeError::Empty);
        }
        if is_zip(bytes) {
            Ok(read_npz(bytes, npz_keys)?.into())
        } else {
            Self::from_nifti_bytes(bytes)
        }
    }

    fn from_nifti_bytes(bytes: &[u8]) -> Result<Self, VolumeError> {
        if bytes.is_empty() {
            return Err(VolumeError::Empty);
        }
        if is_gzip(bytes) {
            read_nifti_gz(bytes)
        } else {
            read_nifti_raw(bytes)
        }
    }

    /// `[nx, ny, nz]` of each time point.
    pub fn dims(&self) -> [usize; 3] {
        self.geometry.dims
    }

    pub fn time_points(&self) -> usize {
        self.geometry.time_points
    }

    /// The one volume of a file without a time axis (or with one time point).
    pub fn into_volume(self) -> Result<Volume, VolumeError> {
        if self.time_points() > 1 {
            return Err(VolumeError::TimeSeries {
                dims: self.dims(),
                time_points: self.time_points(),
            });
        }
        Ok(self.into_volume_unchecked())
    }

    /// The 3-D volume of time point `t` (0-based), with the file's 3-D geometry.
    pub fn time_point(&self, t: usize) -> Result<Volume, VolumeError> {
        let time_points = self.time_points();
        if t >= time_points {
            return Err(VolumeError::TimePointOutOfRange {
                wanted: t,
                time_points,
            });
        }
        let n = self.data.len() / time_points;
        let mut geometry = self.geometry.clone();
        geometry.time_points = 1;
        Ok(Volume {
            data: self.data[t * n..(t + 1) * n].to_vec(),
            dims: geometry.dims,
            spacing: self.spacing,
            geometry,
            dtype: self.dtype,
            format: self.format,
        })
    }

    /// The time points of a single-slice series `(nx, ny, 1, t)` as the slices of one
    /// volume `[nx, ny, t]` (slice k = time point k: the same voxel order, nothing moves),
    /// keeping the 4-D geometry, so that a mask over all frames is written back as
    /// `(nx, ny, 1, t)` over the source. `None` when the series has several slices.
    pub fn into_time_frames(self) -> Option<Volume> {
        let [nx, ny, nz] = self.dims();
        (nz == 1).then(|| {
            let t = self.time_points();
            let mut volume = self.into_volume_unchecked();
            volume.dims = [nx, ny, t];
            volume
        })
    }

    fn into_volume_unchecked(self) -> Volume {
        Volume {
            data: self.data,
            dims: self.geometry.dims,
            spacing: self.spacing,
            geometry: self.geometry,
            dtype: self.dtype,
            format: self.format,
        }
    }
}

impl From<Volume> for VolumeSeries {
    fn from(v: Volume) -> Self {
        Self {
            data: v.data,
            geometry: v.geometry,
            spacing: v.spacing,
            dtype: v.dtype,
            format: v.format,
        }
    }
}

fn is_gzip(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] == 0x1f && b[1] == 0x8b
}

/// Whether `b` starts like a zip archive (a MedSAM `.npz`, a zip of DICOM files or
/// masks, a PyTorch checkpoint).
pub fn is_zip(b: &[u8]) -> bool {
    b.len() >= 4 && b[0] == b'P' && b[1] == b'K' && (b[2], b[3]) == (3, 4)
}

/// Checks dims for zeros and the voxel count against [`MAX_VOXELS`].
fn check_voxel_count(dims: &[usize]) -> Result<usize, VolumeError> {
    if dims.contains(&0) {
        return Err(VolumeError::ZeroDim(dims.to_vec()));
    }
    let n: u128 = dims.iter().map(|&d| d as u128).product();
    if n > MAX_VOXELS as u128 {
        return Err(VolumeError::TooLarge { voxels: n });
    }
    usize::try_from(n).map_err(|_| VolumeError::TooLarge { voxels: n })
}

// ---------------------------------------------------------------------------------------
// NIfTI-1
// ---------------------------------------------------------------------------------------

/// The parsed NIfTI-1 header fields that reading needs.
#[derive(Debug, Clone)]
struct NiftiHeader {
    big_endian: bool,
    geometry: NiftiGeometry,
    dtype: DataType,
    vox_offset: usize,
    scl_slope: f32,
    scl_inter: f32,
    voxels: usize,
}

/// Little/big-endian field reads from a header buffer of at least 348 bytes.
struct Fields<'a> {
    b: &'a [u8],
    big: bool,
}

impl Fields<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.b[at..at + N]);
        if self.big {
            out.reverse();
        }
        out
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.bytes(at))
    }
    fn f32(&self, at: usize) -> f32 {
        f32::from_le_bytes(self.bytes(at))
    }
}

/// Parses the 348-byte NIfTI-1 header (`hdr.len() >= 348`).
fn parse_nifti_header(hdr: &[u8]) -> Result<NiftiHeader, VolumeError> {
    if hdr.len() < 4 {
        return Err(VolumeError::TruncatedHeader { got: hdr.len() });
    }
    // Endianness from sizeof_hdr, as every NIfTI reader does. Checked before the length:
    // a short file that does not start like NIfTI (a text file, a .npz that is not a zip)
    // is not a "truncated NIfTI header".
    let le = i32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let be = i32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let big = match (le, be) {
        (348, _) => false,
        (_, 348) => true,
        (540, _) | (_, 540) => {
            return Err(VolumeError::UnknownFormat(
                "NIfTI-2 (sizeof_hdr 540) is not supported; save as NIfTI-1".into(),
            ));
        }
        _ => {
            return Err(VolumeError::UnknownFormat(format!(
                "sizeof_hdr is {le}, a NIfTI-1 header has 348"
            )));
        }
    };
    if hdr.len() < NIFTI1_HEADER_LEN {
        return Err(VolumeError::TruncatedHeader { got: hdr.len() });
    }
    let f = Fields { b: hdr, big };
    let magic = &hdr[344..348];
    match magic {
        b"n+1\0" => {}
        b"ni1\0" => {
            return Err(VolumeError::UnknownFormat(
                "this is the header of a .hdr/.img pair; give a single-file .nii or .nii.gz".into(),
            ));
        }
        _ => {
            return Err(VolumeError::UnknownFormat(
                "no NIfTI-1 magic `n+1` (an Analyze 7.5 file?)".into(),
            ));
        }
    }

    let mut dim = [0i16; 8];
    for (n, d) in dim.iter_mut().enumerate() {
        *d = f.i16(40 + 2 * n);
    }
    let ndim = dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(VolumeError::InvalidHeader(format!(
            "dim[0] = {ndim}, must be 1..7"
        )));
    }
    let ndim = ndim as usize;
    let mut used = Vec::with_capacity(ndim);
    for &d in &dim[1..=ndim] {
        if d < 0 {
            return Err(VolumeError::InvalidHeader(format!(
                "negative dimension in dim = {:?}",
                &dim[..=ndim]
            )));
        }
        used.push(d as usize);
    }
    if used.contains(&0) {
        return Err(VolumeError::ZeroDim(used));
    }
    if used.iter().skip(4).any(|&d| d > 1) {
        return Err(VolumeError::InvalidHeader(format!(
            "a {ndim}-D image with dim = {used:?}: dimensions past the 4th (time) must be 1 \
             (2-D, 3-D and 4-D time series are supported)"
        )));
    }
    let dims = [
        used[0],
        used.get(1).copied().unwrap_or(1),
        used.get(2).copied().unwrap_or(1),
    ];
    let time_points = used.get(3).copied().unwrap_or(1);
    // All time points are read: the limit holds for t × the voxels of one.
    let voxels = check_voxel_count(&[dims[0], dims[1], dims[2], time_points])?;

    let code = f.i16(70);
    let dtype = DataType::from_nifti_code(code).ok_or(VolumeError::UnsupportedDatatype(code))?;
    // bitpix (72) is not checked against the datatype: nibabel ignores it too.

    let mut pixdim = [0f32; 8];
    for (n, p) in pixdim.iter_mut().enumerate() {
        *p = f.f32(76 + 4 * n);
    }
    let vox_offset = f.f32(108);
    if !vox_offset.is_finite() || vox_offset < 0.0 || vox_offset.fract() != 0.0 {
        return Err(VolumeError::InvalidHeader(format!(
            "vox_offset {vox_offset} is not a byte offset"
        )));
    }
    // Old writers leave vox_offset at 0 in single files; the data then follow the header.
    let vox_offset = (vox_offset as usize).max(NIFTI1_MIN_VOX_OFFSET);

    let mut srow = [[0f32; 4]; 3];
    for (r, row) in srow.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = f.f32(280 + 16 * r + 4 * c);
        }
    }
    let geometry = NiftiGeometry {
        ndim: ndim.min(3) as u16,
        dims,
        time_points,
        pixdim,
        dim_info: hdr[39],
        xyzt_units: hdr[123],
        qform_code: f.i16(252),
        sform_code: f.i16(254),
        quatern: [f.f32(256), f.f32(260), f.f32(264)],
        qoffset: [f.f32(268), f.f32(272), f.f32(276)],
        srow,
    };
    Ok(NiftiHeader {
        big_endian: big,
        geometry,
        dtype,
        vox_offset,
        scl_slope: f.f32(112),
        scl_inter: f.f32(116),
        voxels,
    })
}

fn read_nifti_raw(bytes: &[u8]) -> Result<VolumeSeries, VolumeError> {
    let h = parse_nifti_header(bytes)?;
    let need = (h.voxels as u64) * h.dtype.size() as u64;
    let available = (bytes.len() as u64).saturating_sub(h.vox_offset as u64);
    if available < need {
        return Err(VolumeError::TruncatedData {
            offset: h.vox_offset as u64,
            expected: need,
            available,
        });
    }
    let data = &bytes[h.vox_offset..h.vox_offset + need as usize];
    finish_nifti(h, data, SourceFormat::Nifti)
}

/// Reads from a gzip stream, mapping decoder errors to [`VolumeError::Gzip`]; returns
/// fewer bytes than `n` only when the (intact) stream ends.
fn read_up_to(r: &mut impl Read, n: u64) -> Result<Vec<u8>, VolumeError> {
    let mut out = Vec::new();
    r.take(n)
        .read_to_end(&mut out)
        .map_err(|e| VolumeError::Gzip(e.to_string()))?;
    Ok(out)
}

fn read_nifti_gz(bytes: &[u8]) -> Result<VolumeSeries, VolumeError> {
    let mut dec = MultiGzDecoder::new(bytes);
    // Header first: the voxel count is checked before the data are inflated.
    let hdr = read_up_to(&mut dec, NIFTI1_HEADER_LEN as u64)?;
    if hdr.is_empty() {
        return Err(VolumeError::Empty);
    }
    let h = parse_nifti_header(&hdr)?;
    let need = (h.voxels as u64) * h.dtype.size() as u64;
    let skip = (h.vox_offset - NIFTI1_HEADER_LEN) as u64;
    // The gap (extensions) is skipped, not kept: vox_offset may claim more than the
    // whole stream (a gzip bomb would be read into memory).
    let skipped = std::io::copy(&mut dec.by_ref().take(skip), &mut std::io::sink())
        .map_err(|e| VolumeError::Gzip(e.to_string()))?;
    let data = if skipped == skip {
        // Room for all the voxels at once (`need` follows from a voxel count under
        // MAX_VOXELS): one allocation that fails with a message, not a doubling that
        // aborts when memory runs out.
        let mut room = Vec::new();
        usize::try_from(need)
            .ok()
            .and_then(|n| room.try_reserve_exact(n).ok())
            .ok_or(VolumeError::OutOfMemory {
                what: "the inflated voxel data",
                bytes: need,
            })?;
        dec.by_ref()
            .take(need)
            .read_to_end(&mut room)
            .map_err(|e| VolumeError::Gzip(e.to_string()))?;
        room
    } else {
        Vec::new()
    };
    if (data.len() as u64) < need {
        return Err(VolumeError::TruncatedData {
            offset: h.vox_offset as u64,
            expected: need,
            available: data.len() as u64,
        });
    }
    // Inflate the rest (nothing, normally) so a cut or corrupt trailer (CRC) is reported.
    std::io::copy(&mut dec, &mut std::io::sink()).map_err(|e| VolumeError::Gzip(e.to_string()))?;
    finish_nifti(h, &data, SourceFormat::NiftiGz)
}

/// Converts the raw voxel bytes (`voxels * size` of them) to f32 with scaling.
fn finish_nifti(
    h: NiftiHeader,
    raw: &[u8],
    format: SourceFormat,
) -> Result<VolumeSeries, VolumeError> {
    let mut data = decode_elements(raw, h.dtype, h.big_endian)?;
    // NIfTI-1: scale when scl_slope is non-zero (nibabel also ignores a non-finite slope).
    let (slope, inter) = (h.scl_slope, h.scl_inter);
    if slope.is_finite() && slope != 0.0 {
        let inter = if inter.is_finite() { inter } else { 0.0 };
        if slope != 1.0 || inter != 0.0 {
            for v in &mut data {
                *v = *v * slope + inter;
            }
        }
    }
    Ok(VolumeSeries {
        data,
        spacing: h.geometry.spacing(),
        geometry: h.geometry,
        dtype: h.dtype,
        format,
    })
}

/// Decodes packed elements of `dtype` to f32.
fn decode_elements(raw: &[u8], dtype: DataType, big: bool) -> Result<Vec<f32>, VolumeError> {
    let mut out = voxel_buffer(raw.len() / dtype.size())?;
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            out.extend(raw.chunks_exact($n).map(|c| {
                let mut b = [0u8; $n];
                b.copy_from_slice(c);
                let v = if big {
                    <$t>::from_be_bytes(b)
                } else {
                    <$t>::from_le_bytes(b)
                };
                v as f32
            }))
        };
    }
    match dtype {
        DataType::Bool | DataType::U8 => out.extend(raw.iter().map(|&v| v as f32)),
        DataType::I8 => out.extend(raw.iter().map(|&v| v as i8 as f32)),
        DataType::U16 => conv!(u16, 2),
        DataType::I16 => conv!(i16, 2),
        DataType::U32 => conv!(u32, 4),
        DataType::I32 => conv!(i32, 4),
        DataType::U64 => conv!(u64, 8),
        DataType::I64 => conv!(i64, 8),
        DataType::F32 => conv!(f32, 4),
        DataType::F64 => conv!(f64, 8),
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// NIfTI-1 writer
// ---------------------------------------------------------------------------------------

/// Writes `mask` (slice-major, one byte per voxel, `nx * ny * nz` of them, times the
/// time points of a 4-D geometry) as a gzipped NIfTI-1 (`.nii.gz`) of datatype uint8
/// with the dims, pixdim, units, qform and sform of `geometry` copied bit-for-bit, so
/// nibabel sees the same shape, zooms and affine as for the volume the geometry came
/// from. Little-endian, `vox_offset` 352, no scaling
/// (`scl_slope` 1, `scl_inter` 0).
pub fn write_nifti_mask(geometry: &NiftiGeometry, mask: &[u8]) -> Result<Vec<u8>, VolumeError> {
    gzip(&write_nifti_mask_uncompressed(geometry, mask)?)
}

/// As [`write_nifti_mask`], uncompressed (`.nii`).
pub fn write_nifti_mask_uncompressed(
    geometry: &NiftiGeometry,
    mask: &[u8],
) -> Result<Vec<u8>, VolumeError> {
    write_nifti(geometry, DataType::U8, mask, "MedSeg mask")
}

/// Writes a volume's values as a gzipped NIfTI-1 with its geometry: int16 or uint16 when
/// it was read as such (CT in HU, MR), else float32 (integers in other types would not
/// survive a narrower type; f32 is what the values are held in).
pub fn write_nifti_volume(volume: &Volume) -> Result<Vec<u8>, VolumeError> {
    let (dtype, raw): (DataType, Vec<u8>) = match volume.dtype {
        DataType::I16 => (
            DataType::I16,
            volume
                .data
                .iter()
                .flat_map(|&v| (v as i16).to_le_bytes())
                .collect(),
        ),
        DataType::U16 => (
            DataType::U16,
            volume
                .data
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect(),
        ),
        DataType::U8 | DataType::Bool => {
            (DataType::U8, volume.data.iter().map(|&v| v as u8).collect())
        }
        _ => (
            DataType::F32,
            volume.data.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        ),
    };
    gzip(&write_nifti(&volume.geometry, dtype, &raw, "MedSeg")?)
}

fn gzip(raw: &[u8]) -> Result<Vec<u8>, VolumeError> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 8),
        flate2::Compression::default(),
    );
    use std::io::Write;
    // Writing into a Vec cannot fail.
    enc.write_all(raw)
        .and_then(|_| enc.finish())
        .map_err(|e| VolumeError::Gzip(e.to_string()))
}

/// A NIfTI-1 single file: the header of `geometry` and `dtype`, then `data` (that type's
/// little-endian elements, `nx * ny * nz` of them, times the time points).
fn write_nifti(
    geometry: &NiftiGeometry,
    dtype: DataType,
    data: &[u8],
    descrip: &str,
) -> Result<Vec<u8>, VolumeError> {
    let [nx, ny, nz] = geometry.dims;
    let shape = geometry.shape();
    let voxels = check_voxel_count(&shape)?;
    if data.len() != voxels * dtype.size() {
        return Err(VolumeError::MaskLength {
            got: data.len() / dtype.size(),
            expected: voxels,
            dims: shape,
        });
    }
    let too_big = |d: usize| {
        i16::try_from(d).map_err(|_| {
            VolumeError::InvalidHeader(format!(
                "dimension {d} does not fit NIfTI-1's 16-bit dim field"
            ))
        })
    };
    let (dx, dy, dz) = (too_big(nx)?, too_big(ny)?, too_big(nz)?);
    let dt = too_big(geometry.time_points)?;
    let ndim = if dt > 1 {
        4
    } else if geometry.ndim == 2 && nz == 1 {
        2
    } else {
        3
    };

    let mut h = vec![0u8; NIFTI1_MIN_VOX_OFFSET];
    let put_i16 = |h: &mut [u8], at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut [u8], at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[38] = b'r'; // regular, as nibabel writes
    h[39] = geometry.dim_info;
    let dim = [ndim, dx, dy, dz, dt, 1, 1, 1];
    for (n, d) in dim.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * n, *d);
    }
    put_i16(&mut h, 70, dtype.nifti_code());
    put_i16(&mut h, 72, 8 * dtype.size() as i16); // bitpix
    for (n, p) in geometry.pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * n, *p);
    }
    put_f32(&mut h, 108, NIFTI1_MIN_VOX_OFFSET as f32);
    put_f32(&mut h, 112, 1.0); // scl_slope
    put_f32(&mut h, 116, 0.0); // scl_inter
    h[123] = geometry.xyzt_units;
    let descrip = &descrip.as_bytes()[..descrip.len().min(79)];
    h[148..148 + descrip.len()].copy_from_slice(descrip);
    put_i16(&mut h, 252, geometry.qform_code);
    put_i16(&mut h, 254, geometry.sform_code);
    for n in 0..3 {
        put_f32(&mut h, 256 + 4 * n, geometry.quatern[n]);
        put_f32(&mut h, 268 + 4 * n, geometry.qoffset[n]);
    }
    for (r, row) in geometry.srow.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            put_f32(&mut h, 280 + 16 * r + 4 * c, *v);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    // Bytes 348..352: extension flag 0 (no extensions).
    h.reserve(data.len());
    h.extend_from_slice(data);
    Ok(h)
}

// ---------------------------------------------------------------------------------------
// npz
// ---------------------------------------------------------------------------------------

/// An npz error on one line: npyz reports a header it cannot parse with several lines
/// of source excerpt, and an error is one line of stderr or one message in the page.
fn npz_err(e: impl std::fmt::Display) -> VolumeError {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    VolumeError::Npz(lines.join(" "))
}

fn read_npz(bytes: &[u8], keys: &[&str]) -> Result<Volume, VolumeError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(npz_err)?;
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    let Some(key) = keys
        .iter()
        .find(|k| names.iter().any(|n| *n == format!("{k}.npy")))
    else {
        return Err(VolumeError::MissingArray {
            wanted: keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(" or "),
            found: names
                .iter()
                .map(|n| n.trim_end_matches(".npy"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let shape = npy_shape(&mut zip, key)?;
    let key = key.to_string();
    // Refused before the array is read: MedSAM's 2-D dataset stores an RGB(A) image as
    // (H, W, 3), which would otherwise pass as a volume of H slices of W × 3 voxels. A
    // volume only 3 or 4 voxels wide cannot be segmented, so the last axis alone tells
    // them apart (the first two are checked too, so that tiny test volumes still open).
    match shape[..] {
        [h, w, c @ (3 | 4)] if h > c && w > c => {
            return Err(VolumeError::RgbImageArray { key, shape });
        }
        [_, _, _] => {}
        _ => return Err(VolumeError::UnsupportedShape { key, shape }),
    }
    let (shape, dtype, data) = read_npy_entry(&mut zip, &key)?;
    let [d, h, w] = shape[..] else {
        return Err(VolumeError::UnsupportedShape { key, shape });
    };
    let dims = [w as usize, h as usize, d as usize];
    let spacing = if names.iter().any(|n| n == "spacing.npy") {
        let (_, _, s) = read_npy_f64(&mut zip, "spacing")?;
        match s.as_slice() {
            [x, y, z, ..] => [*x, *y, *z],
            [x, y] => [*x, *y, 1.0],
            _ => {
                return Err(VolumeError::Npz(format!(
                    "`spacing` has {} values, expected 3 (x, y, z)",
                    s.len()
                )));
            }
        }
    } else {
        [1.0; 3]
    };
    if spacing.iter().any(|v| !v.is_finite() || *v <= 0.0) {
        return Err(VolumeError::Npz(format!(
            "`spacing` {spacing:?} must be positive"
        )));
    }
    let geometry = NiftiGeometry::from_spacing(dims, spacing);
    Ok(Volume {
        data,
        dims,
        spacing,
        geometry,
        dtype,
        format: SourceFormat::Npz,
    })
}

/// The shape of the array `key.npy`, from its header alone.
/// numpy's bound on an `.npy` header (`numpy.lib.format._MAX_HEADER_SIZE`): npyz
/// allocates whatever length the preamble claims (up to 4 GB in formats 2 and 3) before
/// reading it, so a 100-byte file could ask for gigabytes.
const NPY_MAX_HEADER: u64 = 10_000;

/// The archive's entry `name` (its declared size, and its bytes) once its `.npy`
/// preamble (magic, version, header length) claims a header numpy would read.
fn npy_entry<'z>(
    zip: &'z mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
) -> Result<(u64, impl Read + 'z), VolumeError> {
    let mut entry = zip.by_name(name).map_err(npz_err)?;
    let declared = entry.size();
    // 6 bytes of magic, the major and minor version, then the header's length: 2 bytes
    // in format 1, 4 in formats 2 and 3.
    let mut preamble = Vec::with_capacity(12);
    entry
        .by_ref()
        .take(12)
        .read_to_end(&mut preamble)
        .map_err(|e| npz_err(format!("{name}: {e}")))?;
    let header_len = match preamble[..] {
        [0x93, b'N', b'U', b'M', b'P', b'Y', 1, _, a, b, ..] => {
            u64::from(u16::from_le_bytes([a, b]))
        }
        [0x93, b'N', b'U', b'M', b'P', b'Y', _, _, a, b, c, d] => {
            u64::from(u32::from_le_bytes([a, b, c, d]))
        }
        _ => 0, // not an .npy preamble: npyz says what is wrong
    };
    if header_len > NPY_MAX_HEADER {
        return Err(npz_err(format!(
            "{name}: its header claims {header_len} bytes, more than numpy writes or reads \
             ({NPY_MAX_HEADER})"
        )));
    }
    Ok((declared, Cursor::new(preamble).chain(entry)))
}

fn npy_shape(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, key: &str) -> Result<Vec<u64>, VolumeError> {
    let name = format!("{key}.npy");
    let (_, entry) = npy_entry(zip, &name)?;
    let npy = npyz::NpyFile::new(entry).map_err(|e| npz_err(format!("{name}: {e}")))?;
    Ok(npy.shape().to_vec())
}

/// Reads the array `key.npy` from the archive, widened to f32, in C order.
fn read_npy_entry(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    key: &str,
) -> Result<(Vec<u64>, DataType, Vec<f32>), VolumeError> {
    let name = format!("{key}.npy");
    let (declared, entry) = npy_entry(zip, &name)?;
    let npy = npyz::NpyFile::new(CountingReader {
        inner: entry,
        count: 0,
    })
    .map_err(|e| npz_err(format!("{name}: {e}")))?;
    let header = npy.header().clone();
    let reader = npy.into_inner();
    let header_len = reader.count;
    let npy = npyz::NpyFile::with_header(header, reader);
    let shape = npy.shape().to_vec();
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    let n = check_voxel_count(&dims)?;
    let dtype = npy_dtype(&npy.dtype())?;
    // The zip entry's declared size bounds what can be read: refuse a short one up front.
    let need = (n as u64) * dtype.size() as u64;
    let available = declared.saturating_sub(header_len);
    if available < need {
        return Err(VolumeError::TruncatedData {
            offset: header_len,
            expected: need,
            available,
        });
    }
    let fortran = npy.order() == npyz::Order::Fortran;
    let data = read_npy_values(npy, dtype).map_err(|e| npz_err(format!("{name}: {e}")))?;
    if data.len() != n {
        return Err(VolumeError::TruncatedData {
            offset: header_len,
            expected: need,
            available: (data.len() * dtype.size()) as u64,
        });
    }
    let data = if fortran && dims.len() > 1 {
        fortran_to_c(&data, &dims)?
    } else {
        data
    };
    Ok((shape, dtype, data))
}

/// Counts the bytes read through it (to learn the length of an `.npy` header).
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Reads a small float/int array as f64 (for `spacing`).
fn read_npy_f64(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    key: &str,
) -> Result<(Vec<u64>, DataType, Vec<f64>), VolumeError> {
    let name = format!("{key}.npy");
    let (_, entry) = npy_entry(zip, &name)?;
    let npy = npyz::NpyFile::new(entry).map_err(|e| npz_err(format!("{name}: {e}")))?;
    let shape = npy.shape().to_vec();
    if npy.len() > 16 {
        return Err(VolumeError::Npz(format!(
            "`{key}` has {} values, expected 3",
            npy.len()
        )));
    }
    let dtype = npy_dtype(&npy.dtype())?;
    let e = |e: std::io::Error| npz_err(format!("{name}: {e}"));
    let v: Vec<f64> = match dtype {
        DataType::F64 => npy.into_vec::<f64>().map_err(e)?,
        DataType::F32 => npy
            .into_vec::<f32>()
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
        _ => read_npy_values(npy, dtype)
            .map_err(e)?
            .into_iter()
            .map(f64::from)
            .collect(),
    };
    Ok((shape, dtype, v))
}

fn npy_dtype(d: &npyz::DType) -> Result<DataType, VolumeError> {
    let npyz::DType::Plain(ts) = d else {
        return Err(VolumeError::UnsupportedDtype(d.descr()));
    };
    use npyz::TypeChar as T;
    Ok(match (ts.type_char(), ts.size_field()) {
        (T::Bool, 1) => DataType::Bool,
        (T::Uint, 1) => DataType::U8,
        (T::Int, 1) => DataType::I8,
        (T::Uint, 2) => DataType::U16,
        (T::Int, 2) => DataType::I16,
        (T::Uint, 4) => DataType::U32,
        (T::Int, 4) => DataType::I32,
        (T::Uint, 8) => DataType::U64,
        (T::Int, 8) => DataType::I64,
        (T::Float, 4) => DataType::F32,
        (T::Float, 8) => DataType::F64,
        _ => return Err(VolumeError::UnsupportedDtype(d.descr())),
    })
}

fn read_npy_values<R: Read>(npy: npyz::NpyFile<R>, dtype: DataType) -> std::io::Result<Vec<f32>> {
    fn widen<T: npyz::Deserialize, R: Read>(
        npy: npyz::NpyFile<R>,
        f: impl Fn(T) -> f32,
    ) -> std::io::Result<Vec<f32>> {
        // Room for every value at once (the caller checked the count against MAX_VOXELS):
        // a failed allocation is an error that names the size, not an abort.
        let values = npy.len();
        let mut out = Vec::new();
        usize::try_from(values)
            .ok()
            .and_then(|n| out.try_reserve_exact(n).ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::OutOfMemory,
                    format!(
                        "not enough memory: {values} values need {} bytes as 32-bit floats",
                        values.saturating_mul(4)
                    ),
                )
            })?;
        let reader = npy
            .data::<T>()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        for value in reader {
            out.push(f(value?));
        }
        Ok(out)
    }
    match dtype {
        DataType::Bool => widen::<bool, R>(npy, |v| f32::from(u8::from(v))),
        DataType::U8 => widen::<u8, R>(npy, f32::from),
        DataType::I8 => widen::<i8, R>(npy, f32::from),
        DataType::U16 => widen::<u16, R>(npy, f32::from),
        DataType::I16 => widen::<i16, R>(npy, f32::from),
        DataType::U32 => widen::<u32, R>(npy, |v| v as f32),
        DataType::I32 => widen::<i32, R>(npy, |v| v as f32),
        DataType::U64 => widen::<u64, R>(npy, |v| v as f32),
        DataType::I64 => widen::<i64, R>(npy, |v| v as f32),
        DataType::F32 => widen::<f32, R>(npy, |v| v),
        DataType::F64 => widen::<f64, R>(npy, |v| v as f32),
    }
}

/// Reorders a Fortran-order (first index fastest) array of `dims` to C order.
fn fortran_to_c(data: &[f32], dims: &[usize]) -> Result<Vec<f32>, VolumeError> {
    let mut out = voxel_buffer(data.len())?;
    out.resize(data.len(), 0.0);
    // Fortran strides.
    let mut fstride = vec![1usize; dims.len()];
    for a in 1..dims.len() {
        fstride[a] = fstride[a - 1] * dims[a - 1];
    }
    let mut idx = vec![0usize; dims.len()];
    for o in out.iter_mut() {
        let src: usize = idx.iter().zip(&fstride).map(|(i, s)| i * s).sum();
        *o = data[src];
        // Advance the C-order multi-index (last fastest).
        for a in (0..dims.len()).rev() {
            idx[a] += 1;
            if idx[a] < dims[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little NIfTI-1 header + data, written by hand (not with our writer), for tests.
    fn nifti(
        big: bool,
        dim: &[i16],
        datatype: i16,
        pixdim: [f32; 4],
        slope_inter: (f32, f32),
        data: &[u8],
    ) -> Vec<u8> {
        let mut h = vec![0u8; 352];
        let i16b = |v: i16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let f32b = |v: f32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let s = if big {
            348i32.to_be_bytes()
        } else {
            348i32.to_le_bytes()
        };
        h[0..4].copy_from_slice(&s);
        let mut d = [1i16; 8];
        d[0] = dim.len() as i16;
        d[1..=dim.len()].copy_from_slice(dim);
        for (n, v) in d.iter().enumerate() {
            h[40 + 2 * n..42 + 2 * n].copy_from_slice(&i16b(*v));
        }
        h[70..72].copy_from_slice(&i16b(datatype));
        for (n, v) in pixdim.iter().enumerate() {
            h[76 + 4 * n..80 + 4 * n].copy_from_slice(&f32b(*v));
        }
        h[108..112].copy_from_slice(&f32b(352.0));
        h[112..116].copy_from_slice(&f32b(slope_inter.0));
        h[116..120].copy_from_slice(&f32b(slope_inter.1));
        h[344..348].copy_from_slice(b"n+1\0");
        h.extend_from_slice(data);
        h
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_int16_both_endiannesses_in_x_fastest_order() {
        // dims (x=3, y=2, z=2); value = 100*k + 10*j + i.
        let vals: Vec<i16> = (0..12)
            .map(|n| (100 * (n / 6) + 10 * ((n / 3) % 2) + n % 3) as i16)
            .collect();
        for big in [false, true] {
            let raw: Vec<u8> = vals
                .iter()
                .flat_map(|v| {
                    if big {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    }
                })
                .collect();
            let bytes = nifti(big, &[3, 2, 2], 4, [1.0, 0.5, 0.75, 2.5], (0.0, 0.0), &raw);
            let v = Volume::from_bytes(&bytes).unwrap();
            assert_eq!(v.dims, [3, 2, 2]);
            assert_eq!(v.dtype, DataType::I16);
            assert_eq!(v.format, SourceFormat::Nifti);
            assert_eq!(v.spacing, [0.5, 0.75, 2.5]);
            assert_eq!(v.get(1, 1, 2), 112.0);
            assert_eq!(v.get(0, 1, 0), 10.0);
            assert_eq!(v.slice(1), &[100.0, 101.0, 102.0, 110.0, 111.0, 112.0]);
        }
    }

    #[test]
    fn every_datatype_and_scaling() {
        let cases: Vec<(i16, Vec<u8>, Vec<f32>)> = vec![
            (2, vec![0, 255], vec![0.0, 255.0]),
            (256, vec![0x80, 0x7f], vec![-128.0, 127.0]),
            (
                512,
                [1u16, 65535].iter().flat_map(|v| v.to_le_bytes()).collect(),
                vec![1.0, 65535.0],
            ),
            (
                8,
                [-7i32, 70000]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                vec![-7.0, 70000.0],
            ),
            (
                16,
                [1.5f32, -2.25]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                vec![1.5, -2.25],
            ),
            (
                64,
                [0.125f64, -3.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                vec![0.125, -3.0],
            ),
        ];
        for (code, raw, want) in cases {
            let v = Volume::from_bytes(&nifti(false, &[2, 1, 1], code, [1.0; 4], (1.0, 0.0), &raw))
                .unwrap();
            assert_eq!(v.data, want, "datatype {code}");
        }
        // scl_slope 2, scl_inter -1.
        let v = Volume::from_bytes(&nifti(false, &[2, 1, 1], 2, [1.0; 4], (2.0, -1.0), &[3, 4]))
            .unwrap();
        assert_eq!(v.data, vec![5.0, 7.0]);
        // Non-finite slope: no scaling.
        let v = Volume::from_bytes(&nifti(
            false,
            &[2, 1, 1],
            2,
            [1.0; 4],
            (f32::NAN, 5.0),
            &[3, 4],
        ))
        .unwrap();
        assert_eq!(v.data, vec![3.0, 4.0]);
    }

    #[test]
    fn gzip_and_raw_agree_and_two_d_is_one_slice() {
        let raw: Vec<u8> = (0..20).collect();
        let plain = nifti(false, &[5, 4], 2, [1.0, 0.8, 0.9, 0.0], (0.0, 0.0), &raw);
        let a = Volume::from_bytes(&plain).unwrap();
        let b = Volume::from_bytes(&gzip(&plain)).unwrap();
        assert_eq!(a.dims, [5, 4, 1]);
        assert_eq!(a.geometry.ndim, 2);
        assert_eq!(b.format, SourceFormat::NiftiGz);
        assert_eq!(a.data, b.data);
        // pixdim[3] = 0 in a 2-D header reads as 1 mm.
        assert_eq!(a.spacing[2], 1.0);
    }

    #[test]
    fn clear_errors() {
        let ok = nifti(false, &[4, 4, 2], 2, [1.0; 4], (0.0, 0.0), &[7u8; 32]);
        assert!(matches!(Volume::from_bytes(&[]), Err(VolumeError::Empty)));
        assert!(matches!(
            Volume::from_bytes(&gzip(&[])),
            Err(VolumeError::Empty)
        ));
        // Data cut short, plain and gzipped (a complete gzip stream of a short file).
        let short = &ok[..ok.len() - 5];
        match Volume::from_bytes(short) {
            Err(VolumeError::TruncatedData {
                expected: 32,
                available: 27,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Volume::from_bytes(&gzip(short)),
            Err(VolumeError::TruncatedData { .. })
        ));
        // A gzip stream cut in the middle.
        let big = nifti(
            false,
            &[64, 64, 4],
            2,
            [1.0; 4],
            (0.0, 0.0),
            &(0..16384).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>(),
        );
        let gz = gzip(&big);
        let e = Volume::from_bytes(&gz[..gz.len() / 2]).unwrap_err();
        assert!(matches!(e, VolumeError::Gzip(_)), "{e:?}");
        // Only the trailer (CRC + size) missing.
        let e = Volume::from_bytes(&gz[..gz.len() - 4]).unwrap_err();
        assert!(matches!(e, VolumeError::Gzip(_)), "{e:?}");
        // Header cut.
        assert!(matches!(
            Volume::from_bytes(&ok[..200]),
            Err(VolumeError::TruncatedHeader { got: 200 })
        ));
        // Unsupported datatype (complex64 = 32).
        assert!(matches!(
            Volume::from_bytes(&nifti(
                false,
                &[2, 2, 2],
                32,
                [1.0; 4],
                (0.0, 0.0),
                &[0; 64]
            )),
            Err(VolumeError::UnsupportedDatatype(32))
        ));
        // Zero dim.
        assert!(matches!(
            Volume::from_bytes(&nifti(false, &[4, 0, 2], 2, [1.0; 4], (0.0, 0.0), &[])),
            Err(VolumeError::ZeroDim(_))
        ));
        // Absurd dims are refused before anything is allocated: 32767^3 ≈ 3.5e13 voxels.
        match Volume::from_bytes(&nifti(
            false,
            &[32767, 32767, 32767],
            2,
            [1.0; 4],
            (0.0, 0.0),
            &[],
        )) {
            Err(VolumeError::TooLarge { voxels }) => assert_eq!(voxels, 32767u128.pow(3)),
            other => panic!("{other:?}"),
        }
        // 4-D with several volumes: read by `VolumeSeries`, refused where one volume is
        // wanted, with the count of time points.
        let four_d = nifti(false, &[2, 2, 2, 3], 2, [1.0; 4], (0.0, 0.0), &[0; 24]);
        match Volume::from_bytes(&four_d) {
            Err(e @ VolumeError::TimeSeries { time_points: 3, .. }) => {
                assert!(e.to_string().contains("3 time points of 2×2×2"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // Dimensions past time (dim[5..=7]) stay refused, naming the dims.
        match Volume::from_bytes(&nifti(
            false,
            &[2, 2, 1, 1, 3],
            2,
            [1.0; 4],
            (0.0, 0.0),
            &[0; 12],
        )) {
            Err(e @ VolumeError::InvalidHeader(_)) => {
                assert!(e.to_string().contains("[2, 2, 1, 1, 3]"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // The limit counts every time point: 2048² × 128 × 4 = 2^31 voxels + ... over it.
        assert!(matches!(
            VolumeSeries::from_bytes(&nifti(
                false,
                &[2048, 2048, 128, 5],
                2,
                [1.0; 4],
                (0.0, 0.0),
                &[]
            )),
            Err(VolumeError::TooLarge { .. })
        ));
        // Not a NIfTI at all; a NIfTI-2; an Analyze header.
        assert!(matches!(
            Volume::from_bytes(&[b'x'; 400]),
            Err(VolumeError::UnknownFormat(_))
        ));
        let mut n2 = ok.clone();
        n2[0..4].copy_from_slice(&540i32.to_le_bytes());
        assert!(
            matches!(Volume::from_bytes(&n2), Err(VolumeError::UnknownFormat(m)) if m.contains("NIfTI-2"))
        );
        let mut analyze = ok.clone();
        analyze[344..348].copy_from_slice(&[0; 4]);
        assert!(matches!(
            Volume::from_bytes(&analyze),
            Err(VolumeError::UnknownFormat(_))
        ));
        // A broken zip is an npz error, not a panic.
        assert!(matches!(
            Volume::from_bytes(b"PK\x03\x04garbage"),
            Err(VolumeError::Npz(_))
        ));
    }

    #[test]
    fn time_series_share_the_3d_geometry() {
        // (x=3, y=2, z=2, t=3), int16; value = 1000 t + 100 k + 10 j + i; pixdim[4] (the
        // time step) and a seconds unit must leave the 3-D affine alone.
        let vals: Vec<i16> = (0..36)
            .map(|n| (1000 * (n / 12) + 100 * ((n / 6) % 2) + 10 * ((n / 3) % 2) + n % 3) as i16)
            .collect();
        let raw: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut bytes = nifti(
            false,
            &[3, 2, 2, 3],
            4,
            [1.0, 0.5, 0.75, 2.5],
            (0.0, 0.0),
            &raw,
        );
        bytes[92..96].copy_from_slice(&0.04f32.to_le_bytes()); // pixdim[4]
        bytes[123] = 2 | 8; // mm, s
        let series = VolumeSeries::from_bytes(&gzip(&bytes)).unwrap();
        assert_eq!((series.dims(), series.time_points()), ([3, 2, 2], 3));
        assert_eq!(series.geometry.shape(), vec![3, 2, 2, 3]);
        let v = series.time_point(2).unwrap();
        assert_eq!((v.dims, v.spacing), ([3, 2, 2], [0.5, 0.75, 2.5]));
        assert_eq!(v.geometry.time_points, 1);
        assert_eq!(v.get(1, 1, 2), 2112.0);
        assert_eq!(v.geometry.affine(), series.geometry.affine());
        // No sform/qform: nibabel's base affine, centred on the 3-D grid alone.
        assert_eq!(v.geometry.affine()[2], [0.0, 0.0, 2.5, -1.25]);
        let e = series.time_point(3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "time point 3 is outside the 3 time point(s) of the file (0..2)"
        );
        // Several slices: not frames.
        assert!(series.clone().into_time_frames().is_none());
        // A mask of one time point is 3-D.
        let one = write_nifti_mask(&v.geometry, &[1; 12]).unwrap();
        assert_eq!(Volume::from_bytes(&one).unwrap().dims, [3, 2, 2]);

        // (x=3, y=2, z=1, t=4): the time points are the slices of one volume, and a mask
        // over them goes back (3, 2, 1, 4) with the source's header fields.
        let raw: Vec<u8> = (0..24).collect();
        let mut bytes = nifti(
            false,
            &[3, 2, 1, 4],
            2,
            [1.0, 0.5, 0.75, 2.5],
            (0.0, 0.0),
            &raw,
        );
        bytes[92..96].copy_from_slice(&0.04f32.to_le_bytes());
        bytes[123] = 2 | 8;
        let series = VolumeSeries::from_bytes(&bytes).unwrap();
        let frames = series.clone().into_time_frames().unwrap();
        assert_eq!(frames.dims, [3, 2, 4]);
        assert_eq!(frames.slice(3), &[18.0, 19.0, 20.0, 21.0, 22.0, 23.0]);
        let mask: Vec<u8> = (0..24).map(|n| (n % 5 == 0) as u8).collect();
        let back =
            VolumeSeries::from_bytes(&write_nifti_mask(&frames.geometry, &mask).unwrap()).unwrap();
        assert_eq!(back.geometry, series.geometry);
        assert_eq!(back.geometry.pixdim[4], 0.04);
        assert_eq!(
            back.data,
            mask.iter().map(|&m| m as f32).collect::<Vec<_>>()
        );
        assert!(matches!(
            write_nifti_mask(&frames.geometry, &mask[..6]),
            Err(VolumeError::MaskLength { expected: 24, .. })
        ));
    }

    #[test]
    fn writer_round_trips_geometry() {
        let mut g = NiftiGeometry::from_spacing([4, 3, 2], [0.7, 0.8, 2.5]);
        g.qform_code = 1;
        g.quatern = [0.0, 0.0, 1.0];
        g.qoffset = [10.0, -20.0, 30.5];
        g.pixdim[0] = -1.0;
        g.srow = [
            [0.7, 0.1, 0.0, 1.0],
            [0.0, -0.8, 0.0, 2.0],
            [0.0, 0.0, 2.5, 3.0],
        ];
        let mask: Vec<u8> = (0..24).map(|i| (i % 3 == 0) as u8).collect();
        let bytes = write_nifti_mask(&g, &mask).unwrap();
        assert!(is_gzip(&bytes));
        let v = Volume::from_bytes(&bytes).unwrap();
        assert_eq!(v.geometry, g);
        assert_eq!(v.dtype, DataType::U8);
        assert_eq!(v.to_mask(), mask);
        assert_eq!(v.spacing, g.spacing());
        // The writer insists on the right number of voxels.
        assert!(matches!(
            write_nifti_mask(&g, &mask[..23]),
            Err(VolumeError::MaskLength {
                got: 23,
                expected: 24,
                ..
            })
        ));
    }

    #[test]
    fn affine_follows_nibabel_precedence() {
        let mut g = NiftiGeometry::from_spacing([4, 3, 2], [0.5, 0.75, 2.0]);
        // sform (code 2) wins.
        assert_eq!(g.affine()[0], [0.5, 0.0, 0.0, 0.0]);
        assert_eq!(g.affine()[2], [0.0, 0.0, 2.0, 0.0]);
        // qform: quaternion (b, c, d) = (0, 0, 1) is 180° about z: diag(-1, -1, 1);
        // qfac -1 flips z.
        g.sform_code = 0;
        g.qform_code = 1;
        g.quatern = [0.0, 0.0, 1.0];
        g.qoffset = [1.0, 2.0, 3.0];
        g.pixdim[0] = -1.0;
        let a = g.affine();
        assert_eq!(a[0], [-0.5, 0.0, 0.0, 1.0]);
        assert_eq!(a[1], [0.0, -0.75, 0.0, 2.0]);
        assert_eq!(a[2], [0.0, 0.0, -2.0, 3.0]);
        assert_eq!(a[3], [0.0, 0.0, 0.0, 1.0]);
        // 90° about x: b = sin 45°.
        g.quatern = [std::f32::consts::FRAC_1_SQRT_2, 0.0, 0.0];
        g.pixdim[0] = 1.0;
        let a = g.affine();
        assert!((a[0][0] - 0.5).abs() < 1e-6);
        assert!((a[1][2] + 2.0).abs() < 1e-6, "{a:?}");
        assert!((a[2][1] - 0.75).abs() < 1e-6, "{a:?}");
        // Neither: nibabel's base affine, x flipped, centred.
        g.qform_code = 0;
        let a = g.affine();
        assert_eq!(a[0], [-0.5, 0.0, 0.0, 0.75]);
        assert_eq!(a[1], [0.0, 0.75, 0.0, -0.75]);
        assert_eq!(a[2], [0.0, 0.0, 2.0, -1.0]);
    }

    /// Builds an `.npz` (stored, not compressed) from `.npy` blobs written by hand.
    fn npz(entries: &[(&str, &str, &[u64], Vec<u8>)]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, descr, shape, data) in entries {
            w.start_file(
                format!("{name}.npy"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            w.write_all(&npy(descr, shape, false, data)).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn npy(descr: &str, shape: &[u64], fortran: bool, data: &[u8]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let shape = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        let fo = if fortran { "True" } else { "False" };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': {fo}, 'shape': {shape}, }}");
        let pad = (64 - (10 + header.len() + 1) % 64) % 64;
        header.push_str(&" ".repeat(pad));
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn npz_reads_imgs_spacing_and_dtypes() {
        let imgs: Vec<u8> = (0..24).collect();
        let spacing: Vec<u8> = [0.5f64, 0.6, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = npz(&[
            ("imgs", "|u1", &[2, 3, 4], imgs.clone()),
            ("gts", "|u1", &[2, 3, 4], vec![1; 24]),
            ("spacing", "<f8", &[3], spacing),
        ]);
        let v = Volume::from_bytes(&bytes).unwrap();
        assert_eq!(v.format, SourceFormat::Npz);
        assert_eq!(v.dims, [4, 3, 2]);
        assert_eq!(v.spacing, [0.5, 0.6, 3.0]);
        assert_eq!(v.get(1, 2, 3), 23.0);
        assert_eq!(v.get(0, 1, 2), 6.0);
        let g = Volume::from_npz_bytes(&bytes, &["segs", "gts"]).unwrap();
        assert_eq!(g.data, vec![1.0; 24]);
        // Missing array names what there is.
        match Volume::from_npz_bytes(&bytes, &["segs"]) {
            Err(VolumeError::MissingArray { found, .. }) => assert!(found.contains("imgs")),
            other => panic!("{other:?}"),
        }
        // int16 big-endian one-slice volume, no spacing.
        let raw: Vec<u8> = [-5i16, 300, 7, 8]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let v = Volume::from_bytes(&npz(&[("imgs", ">i2", &[1, 2, 2], raw)])).unwrap();
        assert_eq!(
            (v.dims, v.spacing, v.dtype),
            ([2, 2, 1], [1.0; 3], DataType::I16)
        );
        assert_eq!(v.data, vec![-5.0, 300.0, 7.0, 8.0]);
        assert_eq!(v.geometry.ndim, 3);
        // bool and float64.
        let v = Volume::from_bytes(&npz(&[("imgs", "|b1", &[1, 1, 2], vec![1, 0])])).unwrap();
        assert_eq!(v.data, vec![1.0, 0.0]);
        let raw: Vec<u8> = [1.25f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let v = Volume::from_bytes(&npz(&[("imgs", "<f8", &[1, 2, 1], raw)])).unwrap();
        assert_eq!(v.data, vec![1.25, -2.0]);
    }

    #[test]
    fn npz_errors() {
        // Short data.
        let e = Volume::from_bytes(&npz(&[("imgs", "|u1", &[2, 3, 4], vec![0; 20])])).unwrap_err();
        assert!(
            matches!(e, VolumeError::TruncatedData { expected: 24, .. }),
            "{e:?}"
        );
        // 4-D, 2-D (once read as one slice: refused now, naming the shape) and MedSAM's
        // 2-D RGB(A) layout (H, W, 3|4) (once read as H slices of W × 3).
        assert!(matches!(
            Volume::from_bytes(&npz(&[("imgs", "|u1", &[1, 1, 1, 2], vec![0; 2])])),
            Err(VolumeError::UnsupportedShape { .. })
        ));
        let e = Volume::from_bytes(&npz(&[("imgs", "|u1", &[2, 3], vec![0; 6])])).unwrap_err();
        assert!(matches!(e, VolumeError::UnsupportedShape { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "`imgs` has shape [2, 3], a 2-D array: a volume is a 3-D (D, H, W) array of slices"
        );
        for c in [3, 4] {
            let e = Volume::from_bytes(&npz(&[(
                "imgs",
                "|u1",
                &[6, 5, c],
                vec![0; 30 * c as usize],
            )]))
            .unwrap_err();
            assert!(matches!(e, VolumeError::RgbImageArray { .. }), "{e:?}");
            let m = e.to_string();
            assert!(
                m.contains(&format!("[6, 5, {c}]")) && m.contains("PNG or JPEG"),
                "{m}"
            );
        }
        assert!(matches!(
            Volume::from_bytes(&npz(&[("imgs", "<c8", &[1, 1, 1], vec![0; 8])])),
            Err(VolumeError::UnsupportedDtype(_))
        ));
        // Zero and absurd dims.
        assert!(matches!(
            Volume::from_bytes(&npz(&[("imgs", "|u1", &[0, 3, 4], vec![])])),
            Err(VolumeError::ZeroDim(_))
        ));
        assert!(matches!(
            Volume::from_bytes(&npz(&[("imgs", "|u1", &[100000, 100000, 1000], vec![])])),
            Err(VolumeError::TooLarge { .. })
        ));
    }

    #[test]
    fn fortran_order_is_transposed_to_c() {
        // shape (2, 3): C order [[0,1,2],[3,4,5]] stored column-major is 0,3,1,4,2,5.
        let data = [0.0, 3.0, 1.0, 4.0, 2.0, 5.0];
        assert_eq!(
            fortran_to_c(&data, &[2, 3]).unwrap(),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        let f = npy("|u1", &[2, 3], true, &[0, 3, 1, 4, 2, 5]);
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        use std::io::Write;
        w.start_file("imgs.npy", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(&f).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        // A 2-D array is not a volume (the reordering above is what a 3-D one goes through).
        assert!(matches!(
            Volume::from_bytes(&bytes),
            Err(VolumeError::UnsupportedShape { .. })
        ));
        let f = npy("|u1", &[1, 2, 3], true, &[0, 3, 1, 4, 2, 5]);
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("imgs.npy", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(&f).unwrap();
        let v = Volume::from_bytes(&w.finish().unwrap().into_inner()).unwrap();
        assert_eq!(v.dims, [3, 2, 1]);
        assert_eq!(v.data, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }
}
