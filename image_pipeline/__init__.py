"""image-pipeline: turn uploads into web-ready variants and record them in Firestore."""
