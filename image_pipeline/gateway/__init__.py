"""Thin adapters from the ports to Google Cloud (Cloud Storage, Firestore, Eventarc). Never imports Pillow."""
