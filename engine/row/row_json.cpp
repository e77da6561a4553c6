// Placeholder: the parse stage's work item writes the encoder here.
