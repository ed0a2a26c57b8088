"""Pure and fake-store tests of the intake: parsing, validation, redaction, answers."""
