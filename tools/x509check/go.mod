module vkube/tools/x509check

go 1.19
