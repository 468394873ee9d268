//! The SAM heads shared by SAM 2.1 and LiteMedSAM (SAM 1 decoder layout).

pub mod mask_decoder;
pub mod prompt_encoder;
pub mod transformer;
