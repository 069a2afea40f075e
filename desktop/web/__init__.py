"""`ewaste-web`: the station's classifier as a local web page (optional extra `web`)."""
