"""Thin adapters from the ports to Google Cloud (google-cloud-storage, google-cloud-firestore). Never imports Pillow."""
