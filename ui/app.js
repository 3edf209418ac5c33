console.log("eyrie")
