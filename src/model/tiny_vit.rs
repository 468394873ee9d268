//! TinyViT image encoder of LiteMedSAM (in progress).
