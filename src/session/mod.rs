//! Multi-frame state on top of the models: the SAM 2 video / volume session
//! with memory, and LiteMedSAM's box-from-previous-mask propagation.

pub mod frames;
pub mod lite_propagation;
pub mod mask_store;
pub mod video;
pub mod volume3d;
