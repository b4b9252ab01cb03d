# chambon2022 Study 1: VAE reconstruction of real radiographs (Tables 1 and 6, reconstruction figure).
