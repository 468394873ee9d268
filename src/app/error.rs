//! The one error type of the application core: a kind that callers act on (the page
//! shows a "busy" or "too large" differently from a bad file) and a message that names
//! the problem for the user.

use serde::Serialize;

/// What went wrong, as a caller tells cases apart (never by matching message text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The input (a file, a prompt, a name, a range) is not what was asked for.
    BadInput,
    /// A model is needed and none is loaded.
    NoModel,
    /// An image, clip or volume is needed and none is open.
    NoDocument,
    /// Propagation or undo needs a prompt and there is none.
    NoPrompt,
    /// The input is valid but larger than this engine can hold.
    TooLarge,
    /// Another call is still running (the browser's calls must not overlap).
    Busy,
    /// The model or its device failed while running.
    Engine,
}

/// An error of the application core.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
}

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }

    pub fn engine(message: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Engine, message.to_string())
    }

    /// The same error with `context` in front of its message (a file name, a flag).
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        Self {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

impl From<crate::session::video::SessionError> for AppError {
    fn from(e: crate::session::video::SessionError) -> Self {
        use crate::session::video::SessionError as S;
        let kind = match &e {
            S::NoPrompts => ErrorKind::NoPrompt,
            S::Readback(_) => ErrorKind::Engine,
            _ => ErrorKind::BadInput,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<crate::session::frames::FrameError> for AppError {
    fn from(e: crate::session::frames::FrameError) -> Self {
        Self::bad_input(e.to_string())
    }
}

impl From<crate::session::lite_propagation::PropagationError> for AppError {
    fn from(e: crate::session::lite_propagation::PropagationError) -> Self {
        use crate::session::lite_propagation::PropagationError as P;
        match e {
            P::Model(e) => Self::engine(e),
            other => Self::bad_input(other.to_string()),
        }
    }
}

impl From<crate::model::lite_medsam::LiteMedSamError> for AppError {
    fn from(e: crate::model::lite_medsam::LiteMedSamError) -> Self {
        use crate::model::lite_medsam::LiteMedSamError as L;
        match e {
            L::Preprocess(e) => Self::bad_input(e.to_string()),
            L::Readback(e) => Self::engine(e),
        }
    }
}

impl From<crate::predictor::PredictError> for AppError {
    fn from(e: crate::predictor::PredictError) -> Self {
        use crate::predictor::PredictError as P;
        match e {
            P::Readback(e) => Self::engine(e),
            other => Self::bad_input(other.to_string()),
        }
    }
}

impl From<crate::io::volume::VolumeError> for AppError {
    fn from(e: crate::io::volume::VolumeError) -> Self {
        use crate::io::volume::VolumeError as V;
        let kind = match &e {
            V::TooLarge { .. } | V::OutOfMemory { .. } => ErrorKind::TooLarge,
            _ => ErrorKind::BadInput,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<crate::io::image::ImageError> for AppError {
    fn from(e: crate::io::image::ImageError) -> Self {
        Self::bad_input(e.to_string())
    }
}

impl From<crate::preprocess::PreprocessError> for AppError {
    fn from(e: crate::preprocess::PreprocessError) -> Self {
        Self::bad_input(e.to_string())
    }
}

impl From<crate::readback::ReadbackError> for AppError {
    fn from(e: crate::readback::ReadbackError) -> Self {
        Self::engine(e)
    }
}
