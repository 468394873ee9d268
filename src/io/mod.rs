//! Reading and writing images, volumes and masks.

pub mod dicom;
pub mod image;
pub mod npy;
pub mod volume;
pub mod window;
