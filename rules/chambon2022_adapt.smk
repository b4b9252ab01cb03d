# chambon2022 Studies 3-6: adapting the base text-to-image model (Table 4 FID, Table 5 classifier on samples).
