//! An incident in one picture.
use halfopen_core::Postmortem;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotFormat {
    Svg,
    Png,
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("the plot is not built yet")]
    NotYet,
}

/// The plot's file contents.
pub fn plot(_pm: &Postmortem, _format: PlotFormat) -> Result<Vec<u8>, PlotError> {
    Err(PlotError::NotYet)
}
